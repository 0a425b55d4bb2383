"""The two import-path shims: torchvision ops on a CPU torch, and MinkowskiEngine's collections aliases."""

import collections
import subprocess
import sys

import pytest
import torch

from indoor_parsing import _compat
from indoor_parsing.models import minkowski_backend


def test_torchvision_and_dependents_import():
    import segmentation_models_pytorch  # noqa: F401
    import torchvision

    assert torchvision.__version__
    # The op exists now (declared by the guard or loaded from torchvision's own extension).
    assert _compat._op_exists("nms")


def test_guard_does_nothing_when_ops_exist():
    # torchvision is imported by now: a second call must not declare anything.
    assert _compat.ensure_torchvision_ops() == []


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_guard_declares_ops_exactly_when_the_extension_cannot_load():
    # Fresh processes: does torchvision's compiled extension load next to this torch, without our guard?
    ext_loads = _run(
        "import importlib.util, pathlib, torch\n"
        "d = pathlib.Path(importlib.util.find_spec('torchvision').origin).parent\n"
        "try:\n    [torch.ops.load_library(str(p)) for p in d.glob('_C*.so')]; print('ok')\n"
        "except (OSError, RuntimeError):\n    print('fail')"
    )
    declared = _run(
        "from indoor_parsing import _compat\n"
        "import torchvision  # must import in both cases\n"
        "print(','.join(sorted(n for n in _compat._SCHEMAS if _compat._FRAGMENT is not None)))"
    )
    assert declared == ("" if ext_loads == "ok" else "nms,qnms")


def test_guard_noop_when_torchvision_absent(monkeypatch):
    monkeypatch.setattr(_compat.importlib.util, "find_spec", lambda name: None)
    assert _compat.ensure_torchvision_ops() == []


def test_declared_nms_schema_matches_torchvision():
    schema = torch._C._dispatch_find_schema_or_throw("torchvision::nms", "")
    assert schema is not None


def test_collections_shim_adds_only_missing(monkeypatch):
    monkeypatch.delattr(collections, "Sequence", raising=False)
    added = minkowski_backend.apply_collections_shim()
    assert "Sequence" in added and collections.Sequence is collections.abc.Sequence
    assert minkowski_backend.apply_collections_shim() == []


def test_minkowski_imports_through_backend():
    ME = minkowski_backend.import_minkowski()
    coords = torch.IntTensor([[0, 0, 0, 0], [0, 1, 0, 0]])
    x = ME.SparseTensor(torch.ones(2, 1), coordinates=coords)
    conv = ME.MinkowskiConvolution(1, 2, kernel_size=3, dimension=3)
    assert conv(x).F.shape == (2, 2)


def test_minkowski_error_is_clear(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "MinkowskiEngine":
            raise ImportError("no module")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match="make install"):
        minkowski_backend.import_minkowski()
