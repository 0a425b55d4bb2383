"""ScanNet ``.sens`` files read directly: one .sens is one recording (a folder of ``<scan>/<scan>.sens`` or
``*.sens`` is several). Frames are named by their number in the file; colour bytes are stored as they are, depth
(``value / depth_shift`` metres, data/sens.py) is written in the layout's millimetres."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indoor_parsing.data.captures.base import Capture, CaptureFrame, Recording
from indoor_parsing.data.captures.poses import checked_pose, parse_intrinsics
from indoor_parsing.data.formats.sens import SensFile
from indoor_parsing.io import DataFileError


def _sens_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path] if path.suffix == ".sens" else []
    if not path.is_dir():
        return []
    return sorted(path.glob("*.sens")) or sorted(path.glob("*/*.sens"))


@dataclass
class SensCaptureFrame(CaptureFrame):
    """A frame stored inside a .sens (``rgb`` and ``depth`` both name the .sens file)."""

    sens: SensFile | None = None
    number: int = 0

    def _record(self):
        return self.sens.read(self.number)

    def read_rgb(self) -> np.ndarray:
        return self.sens.color(self._record())

    def read_depth_raw(self) -> np.ndarray:
        return self.sens.depth_mm(self._record())

    def colour_size(self) -> tuple[int, int]:
        return self.sens.header.color_size

    def depth_size(self) -> tuple[int, int]:
        return self.sens.header.depth_size

    def encoded_rgb(self) -> tuple[bytes, str] | None:
        compression = self.sens.header.color_compression
        if compression in ("jpeg", "png"):
            return self._record().color_bytes, ".jpg" if compression == "jpeg" else ".png"
        return None

    @property
    def in_place(self) -> bool:
        return False


class SensCapture(Capture):
    """One or several ScanNet .sens files."""

    format = "sens"
    description = "ScanNet .sens file(s), read directly"

    def matches(self) -> bool:
        return bool(_sens_files(self.path))

    def default_layout(self) -> Path:
        return self.path.with_suffix("") if self.path.is_file() else self.path

    def recordings(self) -> list[Recording]:
        files = _sens_files(self.path)
        if not files:
            raise DataFileError(f"{self.path}: no .sens file (expected <scan>.sens or a folder of <scan>/<scan>.sens)")
        return [self._recording(p) for p in files]

    def _recording(self, path: Path) -> Recording:
        sens = SensFile(path)
        h = sens.header
        convention = self.options.pose_convention or "camera-to-world"
        frames = []
        skipped: list[tuple[str, str]] = []
        for i in range(len(sens)):
            T = sens.read_pose(i)
            pose, why = checked_pose(np.asarray(T, np.float64), convention, f"{path} frame {i}")
            frames.append(SensCaptureFrame(str(i), path, path, pose, why, sens=sens, number=i))
        if self.options.intrinsics:
            K, where = parse_intrinsics(self.options.intrinsics, path.parent)
        else:
            K, where = np.asarray(h.intrinsic_color[:3, :3], np.float64), f"{path.name} header"
        K_depth = np.asarray(h.intrinsic_depth[:3, :3], np.float64)
        if self.options.depth_intrinsics:
            K_depth = parse_intrinsics(self.options.depth_intrinsics, path.parent)[0]
        if self.options.depth_scale is not None or self.options.depth_invalid is not None:
            raise DataFileError(f"{path}: a .sens file states its depth scale ({h.depth_shift} per metre); "
                                "--depth-scale / --depth-invalid do not apply")  # fmt: skip
        return Recording(
            name=path.stem, source=path, frames=frames, K_colour=K, K_depth=K_depth, intrinsics_source=where,
            depth=self.options.codec(1000.0), skipped=skipped, inputs=[path],
        )  # fmt: skip
