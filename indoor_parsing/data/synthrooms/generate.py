"""Write a SynthRooms dataset in the prepared layout (data/layout.py): frames, per-scene point clouds, manifest.

::

    root/manifest.json, root/index.json
    root/scenes/<scene>/points.npz                        xyz float32, rgb uint8, label uint8, instance uint16
    root/scenes/<scene>/<sequence>/rgb/000000.png         uint8 RGB
    root/scenes/<scene>/<sequence>/depth/000000.npy       float32 metres (exact), 0 = no return
    root/scenes/<scene>/<sequence>/label/000000.png       uint8 NYU-40 ids
    root/scenes/<scene>/<sequence>/instance/000000.png    uint16 instance ids (Frame.extra["instance"])

Everything is a function of the settings: the same settings give byte-identical files.
"""

import hashlib
import io
import json
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from indoor_parsing.data.layout import INDEX, MANIFEST, Frame, write_layout
from indoor_parsing.data.synthrooms.render import Renderer, kinect_intrinsics
from indoor_parsing.data.synthrooms.scene import sample_scene
from indoor_parsing.data.synthrooms.style import Style, get_style
from indoor_parsing.data.synthrooms.trajectory import sample_trajectory
from indoor_parsing.data.taxonomy import NYU40, SYNTHROOMS_IDS
from indoor_parsing.io import DataFileError, atomic_path, read_json, save_depth, save_image

SPLITS = ("train", "val", "test")


def split_counts(num_scenes: int, split: Sequence[float]) -> tuple[int, int, int]:
    """Scene counts of (train, val, test) from counts that sum to ``num_scenes`` or from fractions."""
    if len(split) != 3 or any(s < 0 for s in split):
        raise ValueError(f"split must be 3 non-negative (train, val, test) counts or fractions, got {split}")
    if all(float(s).is_integer() for s in split) and sum(split) == num_scenes:
        return int(split[0]), int(split[1]), int(split[2])
    if not np.isclose(sum(split), 1.0):
        raise ValueError(f"split {tuple(split)} is neither scene counts summing to {num_scenes} nor fractions of 1")
    train, train_val = round(split[0] * num_scenes), round((split[0] + split[1]) * num_scenes)
    counts = [train, train_val - train, num_scenes - train_val]
    for k in (1, 2):  # a split asked for gets a scene when training keeps at least one
        if split[k] > 0 and counts[k] == 0 and counts[0] > 1:
            counts[0], counts[k] = counts[0] - 1, 1
    return counts[0], counts[1], counts[2]


def synthrooms_settings(
    *, num_scenes: int, sequences: Sequence[str] = ("scan1",), frames_per_sequence: int, height: int, width: int,
    style: str | Path | Style = "source", seed: int = 0, split: Sequence[float] = (0.6, 0.2, 0.2),
    point_density: float = 1500.0,
) -> dict:  # fmt: skip
    """The canonical settings record (JSON-ready) that fully determines a generated dataset."""
    if num_scenes < 1 or frames_per_sequence < 1 or height < 8 or width < 8:
        raise ValueError("num_scenes and frames_per_sequence must be >= 1 and height, width >= 8")
    if not sequences or len(set(sequences)) != len(sequences):
        raise ValueError(f"sequences must be distinct names, got {sequences}")
    st = get_style(style)
    settings = {
        "generator_version": st.version,  # with the style's full record: caches never mix versions or styles
        "num_scenes": int(num_scenes),
        "sequences": [str(s) for s in sequences],
        "frames_per_sequence": int(frames_per_sequence),
        "height": int(height),
        "width": int(width),
        "style": st.to_dict(),
        "seed": int(seed),
        "split": list(split_counts(num_scenes, split)),
        "point_density": float(point_density),
    }
    return json.loads(json.dumps(settings))  # tuples -> lists, as a manifest read back holds them


def settings_hash(settings: dict) -> str:
    """Short stable hash of a settings record (names cache folders)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def _rng(seed: int, style: Style, *stream: int) -> np.random.Generator:
    # The style name is mixed in so source and target domains never share room layouts.
    return np.random.default_rng([seed, zlib.crc32(style.name.encode()), *stream])


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    """Like np.savez_compressed, with fixed zip timestamps so that equal arrays give equal bytes."""
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, array in arrays.items():
            buf = io.BytesIO()
            np.save(buf, array)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue(), compresslevel=1)  # level 1: 4x faster, nearly as small


def _existing(root: Path, settings: dict) -> bool:
    """True when ``root`` holds a complete layout made with ``settings``; raises if it holds anything else."""
    if not (root / MANIFEST).is_file():
        return False
    manifest = read_json(root / MANIFEST)
    if manifest.get("dataset") != "synthrooms":
        raise DataFileError(f"{root}: holds a {manifest.get('dataset')!r} layout, not SynthRooms; choose another root")
    if manifest.get("settings") != settings:
        old = manifest.get("settings") or {}
        diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
        raise DataFileError(
            f"{root}: holds a SynthRooms layout generated with other settings (differing: {', '.join(diff)}); "
            "choose another root or delete that folder"
        )
    return True


def _refuse_foreign_files(root: Path) -> None:
    """Generation writes into ``root``: refuse a folder holding files that are not a (partial) SynthRooms layout."""
    if not root.is_dir():
        return
    ours = {"scenes", MANIFEST, INDEX}  # a killed generation leaves these; hidden names are our temporary files
    foreign = sorted(p.name for p in root.iterdir() if p.name not in ours and not p.name.startswith("."))
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise DataFileError(
            root,
            f"holds other files ({shown}); SynthRooms is generated into its root, never read from your files",
            "to label your own photos use `indoor-parsing segment --input <folder>` (README, Your own data); for "
            "SynthRooms pick a new or empty folder, or leave root unset to use the cache",
        )


def generate_synthrooms(
    root: str | Path, *, num_scenes: int, sequences: Sequence[str] = ("scan1",), frames_per_sequence: int,
    height: int, width: int, style: str | Path | Style = "source", seed: int = 0,
    split: Sequence[float] = (0.6, 0.2, 0.2), point_density: float = 1500.0, progress: bool = True,
) -> Path:  # fmt: skip
    """Generate SynthRooms into ``root`` (or find it already there) and return ``root``.

    Args:
        root: output folder of the prepared layout.
        num_scenes: number of rooms.
        sequences: trajectory names per room, e.g. ("scan1", "scan2") for two independent walks.
        frames_per_sequence: frames per trajectory.
        height, width: image size; intrinsics are the Kinect's scaled to it.
        style: a built-in style ("source", "target": generator version 1; "source_v2", "target_v2": version 2),
            a style file (.yaml / .yml / .json, see style.py) or a :class:`Style`.
        seed: everything is deterministic given the seed and the other settings.
        split: (train, val, test) scene counts summing to ``num_scenes``, or fractions.
        point_density: surface points per square metre in each scene's point cloud.
        progress: show a tqdm progress bar.

    Raises:
        DataFileError: ``root`` holds a complete layout with other settings, another dataset or other files.
    """
    settings = synthrooms_settings(
        num_scenes=num_scenes, sequences=sequences, frames_per_sequence=frames_per_sequence, height=height,
        width=width, style=style, seed=seed, split=split, point_density=point_density,
    )  # fmt: skip
    root = Path(root).expanduser()
    if _existing(root, settings):
        return root
    _refuse_foreign_files(root)
    st = get_style(style)
    K = kinect_intrinsics(height, width)
    n_train, n_val, _ = settings["split"]
    scene_split = ["train"] * n_train + ["val"] * n_val + ["test"] * (num_scenes - n_train - n_val)
    frames: list[Frame] = []
    points: dict[str, str] = {}
    bar = tqdm(total=num_scenes * len(sequences) * frames_per_sequence, desc="SynthRooms", disable=not progress)
    for i in range(num_scenes):
        name = f"scene{i:04d}"
        renderer = Renderer(sample_scene(_rng(seed, st, i, 0), st))
        cloud = renderer.point_cloud(max(1, round(point_density * renderer.surface_area())), _rng(seed, st, i, 1))
        points[name] = f"scenes/{name}/points.npz"
        _save_npz(root / points[name], **cloud)
        for j, seq in enumerate(sequences):
            poses = sample_trajectory(renderer.scene, frames_per_sequence, _rng(seed, st, i, 2, j))
            for k, pose in enumerate(poses):
                out = renderer.render(K, pose, height, width, _rng(seed, st, i, 3, j, k))
                base = f"scenes/{name}/{seq}"
                paths = {key: f"{base}/{key}/{k:06d}.{'npy' if key == 'depth' else 'png'}"
                         for key in ("rgb", "depth", "label", "instance")}  # fmt: skip
                save_image(root / paths["rgb"], out["rgb"])
                save_depth(root / paths["depth"], out["depth"])
                save_image(root / paths["label"], out["label"])
                save_image(root / paths["instance"], out["instance"])
                frames.append(Frame(
                    split=scene_split[i], scene=name, sequence=seq, index=k, rgb=paths["rgb"], height=height,
                    width=width, intrinsics=tuple(K.ravel().tolist()), depth=paths["depth"], label=paths["label"],
                    pose=tuple(pose.ravel().tolist()), extra={"instance": paths["instance"]},
                ))  # fmt: skip
                bar.update()
    bar.close()
    manifest = {
        "dataset": "synthrooms",
        "label_space": "nyu40",
        "generator": "indoor_parsing.data.synthrooms",
        "generator_version": settings["generator_version"],
        "seed": int(seed),
        "settings": settings,
        "splits": {s: [f"scene{i:04d}" for i in range(num_scenes) if scene_split[i] == s] for s in SPLITS},
        "points": points,
        "classes": {NYU40[i - 1]: i for i in SYNTHROOMS_IDS},
        "depth_units": "metres, float32 .npy, 0 = no return",
    }
    write_layout(root, manifest, frames)
    return root
