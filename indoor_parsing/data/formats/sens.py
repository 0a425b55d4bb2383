"""ScanNet .sens reader, and an exporter of its frames to the SensReader folder layout (scannet-export).

Binary format (ScanNet/ScanNet SensReader/c++/src/sensorData.h, little-endian): a header (version 4, sensor name,
four 4x4 float32 matrices, compression types, colour/depth sizes, depth shift, frame count), then per frame a 4x4
camera-to-world pose (``-inf`` when tracking was lost), two timestamps, two byte counts, the colour bytes (JPEG for
ScanNet) and the depth bytes (zlib-compressed uint16, metres = value / depth_shift).

Export layout (as SensReader/python/reader.py): ``color/<i>.jpg`` (the stored JPEG bytes, not re-encoded),
``depth/<i>.png`` (uint16 mm), ``pose/<i>.txt`` and ``intrinsic/{intrinsic,extrinsic}_{color,depth}.txt`` (4x4,
``%f``), with ``<i>`` the frame number without zero padding; ``label-filt/<i>.png`` taken from
``<scan>_2d-label-filt.zip`` when it is next to the .sens.
"""

import argparse
import io
import struct
import sys
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from indoor_parsing.io import DataFileError, atomic_path, save_image, write_text

COLOR_COMPRESSION = {-1: "unknown", 0: "raw", 1: "png", 2: "jpeg"}
DEPTH_COMPRESSION = {-1: "unknown", 0: "raw_ushort", 1: "zlib_ushort", 2: "occi_ushort"}
_FRAME_HEAD = struct.Struct("<16f4Q")  # pose, timestamp_color, timestamp_depth, color_size, depth_size


@dataclass(frozen=True)
class SensHeader:
    sensor_name: str
    intrinsic_color: np.ndarray  # (4, 4)
    extrinsic_color: np.ndarray
    intrinsic_depth: np.ndarray
    extrinsic_depth: np.ndarray
    color_compression: str
    depth_compression: str
    color_size: tuple[int, int]  # (W, H)
    depth_size: tuple[int, int]
    depth_shift: float
    num_frames: int


@dataclass(frozen=True)
class SensFrame:
    index: int
    camera_to_world: np.ndarray  # (4, 4) float32, -inf when tracking was lost
    timestamp_color: int
    timestamp_depth: int
    color_bytes: bytes
    depth_bytes: bytes


class SensFile:
    """Random access to the frames of a .sens file (the frame offsets are indexed once, without reading pixels).

    Args:
        path: the ``<scan>.sens`` file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataFileError(f"{self.path}: file not found")
        size = self.path.stat().st_size
        try:
            with open(self.path, "rb") as f:
                self.header = self._read_header(f)
                self.offsets = []
                for i in range(self.header.num_frames):
                    start = f.tell()
                    head = f.read(_FRAME_HEAD.size)
                    if len(head) < _FRAME_HEAD.size:
                        raise DataFileError(f"{self.path}: truncated: frame {i} of {self.header.num_frames} missing")
                    *_, color_size, depth_size = _FRAME_HEAD.unpack(head)
                    end = f.tell() + color_size + depth_size
                    if end > size:
                        raise DataFileError(
                            f"{self.path}: truncated: frame {i} of {self.header.num_frames} ends at byte {end}, "
                            f"the file has {size}"
                        )
                    self.offsets.append(start)
                    f.seek(end)
        except struct.error as err:
            raise DataFileError(f"{self.path}: truncated or not a .sens file (header: {err})") from err

    def _read_header(self, f) -> SensHeader:
        def take(fmt: str):
            s = struct.Struct("<" + fmt)
            data = f.read(s.size)
            return s.unpack(data)  # struct.error when the file ends early

        (version,) = take("I")
        if version != 4:
            raise DataFileError(f"{self.path}: .sens version {version}, expected 4")
        (strlen,) = take("Q")
        if strlen > 1024:
            raise DataFileError(f"{self.path}: implausible sensor name length {strlen}; not a .sens file?")
        name = f.read(strlen).decode("ascii", errors="replace")
        mats = [np.asarray(take("16f"), np.float32).reshape(4, 4) for _ in range(4)]
        color_c, depth_c = take("ii")
        cw, ch, dw, dh = take("4I")
        (shift,) = take("f")
        (n,) = take("Q")
        color, depth = COLOR_COMPRESSION.get(color_c, "unknown"), DEPTH_COMPRESSION.get(depth_c, "unknown")
        return SensHeader(name, *mats, color, depth, (cw, ch), (dw, dh), float(shift), int(n))

    def __len__(self) -> int:
        return len(self.offsets)

    def read(self, i: int) -> SensFrame:
        with open(self.path, "rb") as f:
            f.seek(self.offsets[i])
            values = _FRAME_HEAD.unpack(f.read(_FRAME_HEAD.size))
            color = f.read(values[18])
            depth = f.read(values[19])
        pose = np.asarray(values[:16], np.float32).reshape(4, 4)
        return SensFrame(i, pose, values[16], values[17], color, depth)

    def read_pose(self, i: int) -> np.ndarray:
        """(4, 4) float32 camera-to-world of frame ``i`` without reading its images."""
        with open(self.path, "rb") as f:
            f.seek(self.offsets[i])
            return np.asarray(_FRAME_HEAD.unpack(f.read(_FRAME_HEAD.size))[:16], np.float32).reshape(4, 4)

    def color(self, frame: SensFrame) -> np.ndarray:
        """(H, W, 3) uint8."""
        W, H = self.header.color_size
        try:
            if self.header.color_compression == "raw":
                return np.frombuffer(frame.color_bytes, np.uint8).reshape(H, W, 3).copy()
            with Image.open(io.BytesIO(frame.color_bytes)) as im:
                return np.asarray(im.convert("RGB"))
        except (OSError, ValueError) as err:
            raise DataFileError(f"{self.path}: frame {frame.index}: cannot decode colour ({err})") from err

    def depth_mm(self, frame: SensFrame) -> np.ndarray:
        """(H, W) uint16 millimetres, 0 = missing (values / depth_shift are metres)."""
        W, H = self.header.depth_size
        try:
            if self.header.depth_compression == "zlib_ushort":
                raw = np.frombuffer(zlib.decompress(frame.depth_bytes), np.uint16)
            elif self.header.depth_compression == "raw_ushort":
                raw = np.frombuffer(frame.depth_bytes, np.uint16)
            else:
                raise DataFileError(f"{self.path}: depth compression {self.header.depth_compression!r} not supported")
            raw = raw.reshape(H, W)
        except (zlib.error, ValueError) as err:
            raise DataFileError(f"{self.path}: frame {frame.index}: cannot decode depth ({err})") from err
        if self.header.depth_shift == 1000.0:
            return raw.copy()
        return np.clip(np.round(raw * (1000.0 / self.header.depth_shift)), 0, 65535).astype(np.uint16)


def matrix_text(m: np.ndarray) -> str:
    """4x4 as SensReader writes it: one row per line, ``%f`` numbers separated by spaces."""
    return "".join(" ".join(f"{v:f}" for v in row) + "\n" for row in np.asarray(m).reshape(4, 4))


def export_sens(sens_path: str | Path, out_dir: str | Path, frame_skip: int = 1) -> int:
    """Export every ``frame_skip``-th frame of a .sens (and its label-filt PNGs) into ``out_dir``; returns frames.

    Resumable: files that exist are complete (atomic writes) and are not written again.
    """
    sens = SensFile(sens_path)
    out = Path(out_dir)
    h = sens.header
    for name, mat in (("intrinsic_color", h.intrinsic_color), ("extrinsic_color", h.extrinsic_color),
                      ("intrinsic_depth", h.intrinsic_depth), ("extrinsic_depth", h.extrinsic_depth)):  # fmt: skip
        write_text(out / "intrinsic" / f"{name}.txt", matrix_text(mat))
    label_zip = sens.path.with_name(f"{sens.path.stem}_2d-label-filt.zip")
    zf = zipfile.ZipFile(label_zip) if label_zip.is_file() else None
    indices = range(0, len(sens), max(1, frame_skip))
    for i in tqdm(indices, desc=sens.path.stem, unit="frame", disable=None):
        if (out / "pose" / f"{i}.txt").is_file():
            continue  # pose is written last
        frame = sens.read(i)
        ext = "jpg" if h.color_compression == "jpeg" else "png"
        if h.color_compression in ("jpeg", "png"):
            with atomic_path(out / "color" / f"{i}.{ext}") as tmp:
                tmp.write_bytes(frame.color_bytes)
        else:
            save_image(out / "color" / f"{i}.png", sens.color(frame))
        save_image(out / "depth" / f"{i}.png", sens.depth_mm(frame))
        if zf is not None and f"label-filt/{i}.png" in zf.namelist():
            with atomic_path(out / "label-filt" / f"{i}.png") as tmp:
                tmp.write_bytes(zf.read(f"label-filt/{i}.png"))
        write_text(out / "pose" / f"{i}.txt", matrix_text(frame.camera_to_world))
    if zf is not None:
        zf.close()
    return len(indices)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--src", required=True, help="a <scan>.sens file, or a folder of <scan>/<scan>.sens")
    parser.add_argument("--dst", required=True, help="output folder: <dst>/<scan>/{color,depth,pose,intrinsic}")
    parser.add_argument("--frame-skip", type=int, default=1, help="export every N-th frame")


def export_from_args(args: argparse.Namespace) -> None:
    src = Path(args.src)
    files = [src] if src.is_file() else sorted(src.glob("*/*.sens")) or sorted(src.glob("*.sens"))
    if not files:
        raise DataFileError(f"{src}: no .sens files found (expected <scan>/<scan>.sens)")
    for path in files:
        n = export_sens(path, Path(args.dst) / path.stem, args.frame_skip)
        print(f"{path}: exported {n} frames to {Path(args.dst) / path.stem}", file=sys.stderr)
