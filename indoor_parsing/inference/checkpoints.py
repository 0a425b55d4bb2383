"""Checking and loading method checkpoints: a missing or truncated file is a :class:`UserError` naming it.

A checkpoint knows its method class: LightningCLI stores ``_class_path`` in the hyper-parameters, and
:class:`~indoor_parsing.methods.base.Method` also writes ``checkpoint["inference"]`` (class path and the
image size it was trained at), so a checkpoint saved from Python loads the same way.
"""

import importlib
import inspect
import zipfile
from pathlib import Path

import torch

from indoor_parsing.errors import UserError

# --ckpt_path values that Lightning resolves itself.
LIGHTNING_KEYWORDS = ("last", "best", "hpc", "registry")
BASE_CLASS = "indoor_parsing.methods.base.SegmentationModule"


def check_checkpoint(path: str | Path) -> Path:
    """``path`` as a Path when it is a readable checkpoint archive; else a :class:`UserError` saying what is wrong."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(path, "checkpoint not found", "check the path (fit writes <default_root_dir>/checkpoints/)")
    if not path.is_file():
        raise UserError(path, "is a folder, not a checkpoint file", "pass the .ckpt file inside it")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as err:
        raise UserError(path, f"not a readable checkpoint, truncated or corrupted ({err})",
                        "copy it again or use another checkpoint") from err  # fmt: skip
    if not any(name.endswith("data.pkl") for name in names):
        raise UserError(path, "is a zip archive but not a PyTorch checkpoint", "pass a .ckpt written by fit")
    return path


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint dict on the CPU (our own files: hyper-parameters are plain Python objects)."""
    path = check_checkpoint(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise UserError(path, f"cannot read the checkpoint ({err})", "copy it again or use another checkpoint") from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UserError(path, "holds no model weights (no state_dict)", "pass a .ckpt written by fit")
    return checkpoint


def method_class(checkpoint: dict) -> type:
    """The LightningModule class that wrote ``checkpoint``."""
    info = checkpoint.get("inference") or {}
    class_path = info.get("class") or (checkpoint.get("hyper_parameters") or {}).get("_class_path") or BASE_CLASS
    module, name = class_path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def init_arguments(cls: type) -> set[str]:
    """Names ``cls(...)`` accepts, following ``**kwargs`` forwarded up the class hierarchy."""
    names = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters.values()
        names.update(p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name != "self")
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return names


def load_method(path: str | Path, device: str | torch.device = "cpu"):
    """The method of a checkpoint, in eval mode on ``device``; returns (module, checkpoint dict)."""
    checkpoint = read_checkpoint(path)
    cls = method_class(checkpoint)
    hparams = {k: v for k, v in (checkpoint.get("hyper_parameters") or {}).items() if not k.startswith("_")}
    if "arch" not in init_arguments(cls):  # checkpoints of 2D methods written when every method saved an `arch`
        hparams.pop("arch", None)
    module = cls(**hparams)
    try:
        module.on_load_checkpoint(checkpoint)  # as Lightning's loading does (S4-Net adds or drops its teacher)
        module.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as err:
        problem = str(err).splitlines()[0]
        raise UserError(path, f"weights do not fit {cls.__name__} ({problem})",
                        "was it written by another version of the method?") from err  # fmt: skip
    return module.to(device).eval(), checkpoint


def trained_size(checkpoint: dict) -> tuple[int, int] | None:
    """(H, W) of the training images recorded in the checkpoint, or None."""
    size = (checkpoint.get("inference") or {}).get("image_size")
    return (int(size[0]), int(size[1])) if size else None
