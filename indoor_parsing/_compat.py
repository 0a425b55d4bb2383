"""Import-path guard for a torchvision whose compiled ops cannot load next to this torch.

The registry's torchvision is a CUDA build; next to a CPU torch its ``_C`` extension fails to load, and
``import torchvision`` (hence timm, smp, torchmetrics, lightning) dies on "operator torchvision::nms does not exist"
when it registers fake kernels. Declaring the two op schemas first lets it import; nms itself then raises if called
(nothing here calls it). Where the extension loads, this function loads it exactly as torchvision would and declares
nothing.
"""

import importlib.util
import sys
from pathlib import Path

import torch

# Kept alive for the life of the process: dropping the Library object would remove the definitions.
_FRAGMENT = None

_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}


def _op_exists(name: str) -> bool:
    try:
        torch._C._dispatch_find_schema_or_throw(f"torchvision::{name}", "")
        return True
    except RuntimeError:
        return False


def _load_extension() -> bool:
    """Try torchvision's own compiled ops; True when they registered."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return False
    for lib in sorted(Path(spec.origin).parent.glob("_C*.so")):
        try:
            torch.ops.load_library(str(lib))
        except (OSError, RuntimeError):
            return False
    return _op_exists("nms")


def ensure_torchvision_ops() -> list[str]:
    """Declare the torchvision op schemas that are missing; returns the names it declared (empty = did nothing)."""
    global _FRAGMENT
    if "torchvision" in sys.modules or importlib.util.find_spec("torchvision") is None:
        return []
    if _op_exists("nms") or _load_extension():
        return []
    missing = [name for name in _SCHEMAS if not _op_exists(name)]
    if missing:
        _FRAGMENT = torch.library.Library("torchvision", "FRAGMENT")
        for name in missing:
            _FRAGMENT.define(_SCHEMAS[name])
    return missing
