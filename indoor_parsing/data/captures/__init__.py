"""Capture readers behind one interface (base.Capture); :func:`open_capture` picks one by format or by detection."""

from pathlib import Path

from indoor_parsing.data.captures.base import Capture, CaptureOptions
from indoor_parsing.data.captures.folder import FolderCapture
from indoor_parsing.data.captures.scannet import ScanNetExportCapture
from indoor_parsing.data.captures.sens import SensCapture
from indoor_parsing.data.captures.sevenscenes import SevenScenesCapture
from indoor_parsing.data.captures.tum import TUMCapture
from indoor_parsing.io import DataFileError

# Detection order: the most specific layout first (a ScanNet export is also a generic colour + depth folder).
READERS: tuple[type[Capture], ...] = (SensCapture, TUMCapture, SevenScenesCapture, ScanNetExportCapture, FolderCapture)
FORMATS = {r.format: r for r in READERS}


def open_capture(path: str | Path, format: str = "auto", options: CaptureOptions | None = None) -> Capture:
    """The capture at ``path`` read as ``format`` (one of FORMATS, or "auto" to detect it)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataFileError(f"{path}: capture not found")
    if format != "auto":
        if format not in FORMATS:
            raise DataFileError(f"{path}: unknown capture format {format!r} (known: auto, {', '.join(FORMATS)})")
        return FORMATS[format](path, options)
    for reader in READERS:
        capture = reader(path, options)
        if capture.matches():
            return capture
    known = "; ".join(f"{r.format}: {r.description}" for r in READERS)
    raise DataFileError(f"{path}: not a capture in any known format ({known})")
