"""Atomic file writing and the per-frame file codecs shared by every dataset layout.

Every file the framework writes goes through :func:`atomic_path`: written under a temporary name in the same folder,
then renamed, so a killed process never leaves a half-written file under the final name.

Depth on disk: ``.png`` is uint16 millimetres (0 = missing), ``.npy`` is float32 metres (0 = missing).
"""

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from indoor_parsing.errors import UserError

_UMASK = os.umask(0)
os.umask(_UMASK)


class DataFileError(UserError):
    """A data file is missing, unreadable or has the wrong content; the message names the file."""


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``, on error remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=1))


def read_json(path: str | Path):
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: file not found")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataFileError(f"{path}: not valid JSON ({err})") from err


def save_image(path: str | Path, array: np.ndarray) -> None:
    """Save uint8 (H, W) / (H, W, 3) or uint16 (H, W) as PNG/JPEG (by suffix), atomically."""
    path = Path(path)
    fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}[path.suffix.lower()]
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))


def save_npy(path: str | Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)


def save_npz(path: str | Path, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def _open_image(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataFileError(f"{path}: file not found")
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im)
    except OSError as err:
        raise DataFileError(f"{path}: cannot decode image ({err})") from err


def load_rgb(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8."""
    path = Path(path)
    rgb = _open_image(path)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    if rgb.ndim != 3 or rgb.shape[2] < 3 or rgb.dtype != np.uint8:
        raise DataFileError(f"{path}: expected an 8-bit RGB image, got shape {rgb.shape} dtype {rgb.dtype}")
    return np.ascontiguousarray(rgb[..., :3])


def save_depth(path: str | Path, depth_m: np.ndarray) -> None:
    """float32 metres -> ``.npy`` as is, or ``.png`` as uint16 millimetres (values beyond 65.535 m are dropped)."""
    path = Path(path)
    depth_m = np.nan_to_num(np.asarray(depth_m, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if path.suffix == ".npy":
        save_npy(path, depth_m)
        return
    mm = np.round(depth_m * 1000.0)
    mm[(mm < 0) | (mm > 65535)] = 0
    save_image(path, mm.astype(np.uint16))


def load_depth(path: str | Path) -> np.ndarray:
    """(H, W) float32 metres, 0 = missing."""
    path = Path(path)
    if path.suffix == ".npy":
        if not path.is_file():
            raise DataFileError(f"{path}: file not found")
        try:
            depth = np.load(path)
        except (ValueError, OSError) as err:
            raise DataFileError(f"{path}: cannot read depth ({err})") from err
        if depth.ndim != 2:
            raise DataFileError(f"{path}: expected a (H, W) depth map, got shape {depth.shape}")
        return depth.astype(np.float32, copy=False)
    raw = _open_image(path)
    if raw.ndim != 2 or raw.dtype not in (np.uint16, np.int32, np.uint8):
        raise DataFileError(f"{path}: expected a 16-bit single-channel depth PNG, got {raw.shape} {raw.dtype}")
    return raw.astype(np.float32) / 1000.0


def load_label(path: str | Path) -> np.ndarray:
    """(H, W) uint8 stored label ids (255 = ignore)."""
    path = Path(path)
    label = _open_image(path)
    if label.ndim != 2 or label.dtype != np.uint8:
        raise DataFileError(f"{path}: expected an 8-bit single-channel label PNG, got {label.shape} {label.dtype}")
    return label
