"""Writers of tiny fixtures in each dataset's *official* on-disk format (shared/datasets.md), for the prepare tests.

Each writer takes plain arrays so a test knows exactly what prepare must give back.
"""

import json
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _jpg_bytes(rgb: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=100)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------------------- NYU-Dv2


def _matlab_v73_header(path: Path) -> None:
    """Fill the 512-byte user block the way MATLAB does: text, version 0x0200 as bytes 00 02, endian marker "IM"."""
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    header = text.ljust(124, b" ") + b"\x00\x02" + b"IM"
    with open(path, "r+b") as f:
        f.write(header.ljust(512, b"\x00"))


def write_nyu_mat(
    path: Path,
    images: np.ndarray,
    depths: np.ndarray,
    labels: np.ndarray,
    scenes: list[str] | None = None,
    raw_depths: np.ndarray | None = None,
) -> Path:
    """nyu_depth_v2_labeled.mat (v7.3): images (N, H, W, 3) uint8, depths (N, H, W) m, labels (N, H, W) 894 ids.

    Arrays are written with MATLAB's column-major axes as h5py shows them: images (N, 3, W, H), others (N, W, H).
    """
    import h5py

    path = Path(path)
    with h5py.File(path, "w", userblock_size=512) as f:
        f.create_dataset("images", data=np.ascontiguousarray(images.transpose(0, 3, 2, 1))).attrs["MATLAB_class"] = (
            np.bytes_("uint8")
        )
        f.create_dataset("depths", data=depths.transpose(0, 2, 1).astype(np.float32)).attrs["MATLAB_class"] = np.bytes_(
            "single"
        )
        if raw_depths is not None:
            f.create_dataset("rawDepths", data=raw_depths.transpose(0, 2, 1).astype(np.float32))
        f.create_dataset("labels", data=labels.transpose(0, 2, 1).astype(np.uint16)).attrs["MATLAB_class"] = np.bytes_(
            "uint16"
        )
        if scenes is not None:
            refs = f.create_group("#refs#")
            ref_arr = np.empty((1, len(scenes)), dtype=h5py.ref_dtype)
            for i, name in enumerate(scenes):
                d = refs.create_dataset(f"s{i}", data=np.array([[ord(c)] for c in name], np.uint16))
                d.attrs["MATLAB_class"] = np.bytes_("char")
                d.attrs["MATLAB_int_decode"] = np.int32(2)
                ref_arr[0, i] = d.ref
            f.create_dataset("scenes", data=ref_arr).attrs["MATLAB_class"] = np.bytes_("cell")
    _matlab_v73_header(path)
    return path


def nyu_894_ids_for(label40: np.ndarray) -> np.ndarray:
    """An 894-class label map that the toolbox's 894 -> 40 table maps back to ``label40`` (smallest id per class)."""
    from indoor_parsing.data.taxonomy import nyu894_to_40

    table = nyu894_to_40()
    inverse = np.zeros(41, np.uint16)
    for c in range(1, 41):
        inverse[c] = int(np.flatnonzero(table == c)[0])
    return inverse[label40]


# ---------------------------------------------------------------------------------------------------------- SUN RGB-D


def sun_depth_png(depth_mm: np.ndarray) -> np.ndarray:
    """The bit-rotated encoding of SUN RGB-D depth PNGs: rotate left by 3 within uint16."""
    d = depth_mm.astype(np.uint16)
    return ((d << 3) | (d >> 13)).astype(np.uint16)


def write_sunrgbd(root: Path, frames: list[dict], with_seg2d: bool = True) -> Path:
    """``root/SUNRGBD/<key>/...`` frame folders plus ``root/SUNRGBDtoolbox`` (allsplit.mat, SUNRGBDMeta.mat and
    SUNRGBD2Dseg.mat as v7.3 with transposed label maps).

    Each frame dict: key ("kv1/NYUdata/NYU0001"), split, rgb (H, W, 3), depth_mm (H, W), label37 (H, W) uint8,
    K (3, 3) as written in intrinsics.txt, and optionally seg_names + seg_index for a per-frame seg.mat.
    """
    import h5py
    import scipy.io

    root = Path(root)
    for fr in frames:
        folder = root / "SUNRGBD" / fr["key"]
        name = fr["key"].rsplit("/", 1)[-1]
        (folder / "image").mkdir(parents=True, exist_ok=True)
        (folder / "image" / f"{name}.jpg").write_bytes(_jpg_bytes(fr["rgb"]))
        for sub in ("depth", "depth_bfx"):
            _png(folder / sub / f"{name}.png", sun_depth_png(fr["depth_mm"]))
        (folder / "intrinsics.txt").write_text(
            "\n".join(" ".join(f"{v:.6f}" for v in row) for row in np.asarray(fr["K"])) + "\n"
        )
        (folder / "scene.txt").write_text("office\n")
        if "seg_names" in fr:
            names = np.empty((1, len(fr["seg_names"])), dtype=object)
            names[0, :] = fr["seg_names"]
            scipy.io.savemat(folder / "seg.mat", {"seglabel": fr["seg_index"].astype(np.uint16), "names": names})
    tb = root / "SUNRGBDtoolbox"
    (tb / "traintestSUNRGBD").mkdir(parents=True, exist_ok=True)
    (tb / "Metadata").mkdir(parents=True, exist_ok=True)

    def cell(paths):
        arr = np.empty((1, len(paths)), dtype=object)
        arr[0, :] = paths
        return arr

    prefix = "/n/fs/sun3d/data/SUNRGBD/"
    scipy.io.savemat(tb / "traintestSUNRGBD" / "allsplit.mat", {
        "alltrain": cell([prefix + f["key"] for f in frames if f["split"] == "train"]),
        "alltest": cell([prefix + f["key"] + "/" for f in frames if f["split"] == "test"]),  # trailing / as in AH lists
    })  # fmt: skip
    if with_seg2d:
        meta = np.zeros((1, len(frames)), dtype=[("rgbpath", object), ("sequenceName", object)])
        for i, fr in enumerate(reversed(frames)):  # meta order differs from split order on purpose
            name = fr["key"].rsplit("/", 1)[-1]
            meta[0, i] = (f"{prefix}{fr['key']}/image/{name}.jpg", "SUNRGBD/" + fr["key"])
        scipy.io.savemat(tb / "Metadata" / "SUNRGBDMeta.mat", {"SUNRGBDMeta": meta})
        with h5py.File(tb / "Metadata" / "SUNRGBD2Dseg.mat", "w", userblock_size=512) as f:
            g = f.create_group("SUNRGBD2Dseg")
            refs = f.create_group("#refs#")
            ref_arr = np.empty((len(frames), 1), dtype=h5py.ref_dtype)
            for i, fr in enumerate(reversed(frames)):
                ref_arr[i, 0] = refs.create_dataset(f"l{i}", data=fr["label37"].T.astype(np.float64)).ref
            g.create_dataset("seglabel", data=ref_arr)
        _matlab_v73_header(tb / "Metadata" / "SUNRGBD2Dseg.mat")
    return root


# ------------------------------------------------------------------------------------------------------------ ScanNet


def write_sens(path: Path, frames: list[dict], K_color: np.ndarray, K_depth: np.ndarray, depth_shift=1000.0) -> Path:
    """A version-4 .sens: frames of rgb (Hc, Wc, 3) (stored as JPEG), depth_mm (Hd, Wd) uint16 (zlib), pose (4, 4)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Hc, Wc = frames[0]["rgb"].shape[:2]
    Hd, Wd = frames[0]["depth_mm"].shape
    name = b"StructureSensor"
    out = [struct.pack("<IQ", 4, len(name)), name]
    for m in (K_color, np.eye(4), K_depth, np.eye(4)):
        full = np.eye(4, dtype=np.float32)
        m = np.asarray(m, np.float32)
        full[: m.shape[0], : m.shape[1]] = m
        out.append(full.astype("<f4").tobytes())
    out.append(struct.pack("<ii4If", 2, 1, Wc, Hc, Wd, Hd, depth_shift))
    out.append(struct.pack("<Q", len(frames)))
    for i, fr in enumerate(frames):
        color = _jpg_bytes(fr["rgb"])
        depth = zlib.compress(np.ascontiguousarray(fr["depth_mm"], "<u2").tobytes())
        out.append(np.asarray(fr["pose"], "<f4").tobytes())
        out.append(struct.pack("<4Q", 1000 * i, 1000 * i, len(color), len(depth)))
        out += [color, depth]
    out.append(struct.pack("<Q", 0))  # no IMU frames
    path.write_bytes(b"".join(out))
    return path


def write_label_zip(path: Path, labels: dict[int, np.ndarray]) -> Path:
    """``<scan>_2d-label-filt.zip``: label-filt/<i>.png, 16-bit raw ScanNet ids."""
    import io

    with zipfile.ZipFile(path, "w") as zf:
        for i, lab in labels.items():
            buf = io.BytesIO()
            Image.fromarray(lab.astype(np.uint16)).save(buf, format="PNG")
            zf.writestr(f"label-filt/{i}.png", buf.getvalue())
    return path


def _matrix_txt(path: Path, m: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(" ".join(f"{v:f}" for v in row) + "\n" for row in np.asarray(m).reshape(4, 4)))


def write_scannet_frames(scan_dir: Path, frames: dict[int, dict], K_color, K_depth, layout: str) -> Path:
    """Exported frames (``layout="exported"``: <i>.*, label-filt raw ids, intrinsic/) or scannet_frames_25k
    (``layout="25k"``: %06d.*, label NYU-40 ids, intrinsics_{color,depth}.txt). Frame dicts: rgb, depth_mm, pose,
    label (optional)."""
    scan_dir = Path(scan_dir)
    for i, fr in frames.items():
        name = f"{i:06d}" if layout == "25k" else str(i)
        (scan_dir / "color").mkdir(parents=True, exist_ok=True)
        (scan_dir / "color" / f"{name}.jpg").write_bytes(_jpg_bytes(fr["rgb"]))
        _png(scan_dir / "depth" / f"{name}.png", fr["depth_mm"].astype(np.uint16))
        _matrix_txt(scan_dir / "pose" / f"{name}.txt", fr["pose"])
        if fr.get("label") is not None:
            dtype = np.uint8 if layout == "25k" else np.uint16
            _png(scan_dir / ("label" if layout == "25k" else "label-filt") / f"{name}.png", fr["label"].astype(dtype))
    K4c, K4d = np.eye(4), np.eye(4)
    K4c[:3, :3], K4d[:3, :3] = K_color, K_depth
    if layout == "25k":
        _matrix_txt(scan_dir / "intrinsics_color.txt", K4c)
        _matrix_txt(scan_dir / "intrinsics_depth.txt", K4d)
    else:
        for name, m in (("intrinsic_color", K4c), ("intrinsic_depth", K4d), ("extrinsic_color", np.eye(4)),
                        ("extrinsic_depth", np.eye(4))):  # fmt: skip
            _matrix_txt(scan_dir / "intrinsic" / f"{name}.txt", m)
    return scan_dir


def write_ply(path: Path, xyz: np.ndarray, rgb: np.ndarray, label: np.ndarray | None = None) -> Path:
    """Binary little-endian PLY like ScanNet's _vh_clean_2(.labels).ply: x y z red green blue alpha [label], + faces."""
    n = len(xyz)
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1"),
              ("alpha", "u1")] + ([("label", "<u2")] if label is not None else [])  # fmt: skip
    v = np.zeros(n, fields)
    v["x"], v["y"], v["z"] = xyz.T
    v["red"], v["green"], v["blue"] = rgb.T
    v["alpha"] = 255
    if label is not None:
        v["label"] = label
    types = {"<f4": "float", "u1": "uchar", "<u2": "ushort"}
    header = ["ply", "format binary_little_endian 1.0", "comment fixture", f"element vertex {n}"]
    header += [f"property {types[t]} {name}" for name, t in fields]
    header += ["element face 1", "property list uchar int vertex_indices", "end_header"]
    face = struct.pack("<B3i", 3, 0, 1, 2)
    path.write_bytes(("\n".join(header) + "\n").encode() + v.tobytes() + face)
    return path


# ----------------------------------------------------------------------------------------------- 2D-3D-S and S3DIS


def semantic_png(index: np.ndarray) -> np.ndarray:
    """(H, W) semantic_labels.json indices -> the 24-bit RGB semantic PNG (R*65536 + G*256 + B)."""
    index = index.astype(np.int64)
    return np.stack([(index >> 16) & 255, (index >> 8) & 255, index & 255], -1).astype(np.uint8)


def write_2d3ds_frame(area_dir: Path, uuid: str, room: str, j: int, rgb, depth_png, sem_index, K, world_to_cam):
    """One perspective frame under ``area_dir/data/{rgb,depth,semantic,pose}`` with the official file names."""
    stem = f"camera_{uuid}_{room}_frame_{j}_domain"
    data = Path(area_dir) / "data"
    _png(data / "rgb" / f"{stem}_rgb.png", rgb)
    _png(data / "depth" / f"{stem}_depth.png", depth_png.astype(np.uint16))
    _png(data / "semantic" / f"{stem}_semantic.png", semantic_png(sem_index))
    (data / "pose").mkdir(parents=True, exist_ok=True)
    pose = {"camera_k_matrix": np.asarray(K).tolist(), "camera_rt_matrix": np.asarray(world_to_cam)[:3].tolist(),
            "frame_num": j, "room": room, "camera_uuid": uuid, "field_of_view_rads": 1.0}  # fmt: skip
    (data / "pose" / f"{stem}_pose.json").write_text(json.dumps(pose))


def write_s3dis_room(room_dir: Path, objects: dict[str, np.ndarray]) -> Path:
    """``Area_N/<room>/Annotations/<class>_<n>.txt`` files of "x y z r g b" lines (objects: name -> (N, 6))."""
    ann = Path(room_dir) / "Annotations"
    ann.mkdir(parents=True, exist_ok=True)
    for name, pts in objects.items():
        lines = [f"{x:.3f} {y:.3f} {z:.3f} {int(r)} {int(g)} {int(b)}" for x, y, z, r, g, b in pts]
        (ann / f"{name}.txt").write_text("\n".join(lines) + "\n")
    return Path(room_dir)


def datamodule_from_config(name: str, **overrides):
    """Instantiate configs/data/<name>.yaml (class_path + init_args, as LightningCLI would) with ``overrides``."""
    import importlib

    import yaml

    cfg = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / "data" / f"{name}.yaml").read_text())
    module, cls = cfg["data"]["class_path"].rsplit(".", 1)
    return getattr(importlib.import_module(module), cls)(**{**cfg["data"]["init_args"], **overrides})
