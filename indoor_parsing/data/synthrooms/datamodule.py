"""SynthRoomsDataModule: generates SynthRooms on first use (no download) and serves it like any prepared layout."""

import os
from collections.abc import Sequence
from pathlib import Path

from indoor_parsing.data.base import IndoorDataModule
from indoor_parsing.data.layout import MANIFEST
from indoor_parsing.data.synthrooms.generate import generate_synthrooms, settings_hash, synthrooms_settings

CACHE_ENV = "INDOOR_PARSING_CACHE"


def cache_base() -> Path:
    """``$INDOOR_PARSING_CACHE/synthrooms`` (cache base defaults to ``~/.cache/indoor_parsing``)."""
    return Path(os.environ.get(CACHE_ENV) or "~/.cache/indoor_parsing").expanduser() / "synthrooms"


def default_root(settings: dict) -> Path:
    """``$INDOOR_PARSING_CACHE/synthrooms/<hash>``: one folder per generation settings."""
    return cache_base() / settings_hash(settings)


def cache_hint(message: str) -> str | None:
    """The fix for an error message that starts with a file inside the SynthRooms cache: delete that copy."""
    base = cache_base().resolve()
    try:
        relative = Path(message.split(": ", 1)[0]).resolve().relative_to(base)
    except (ValueError, OSError):
        return None
    if not relative.parts:
        return None
    return f"this file is in the SynthRooms cache: delete {base / relative.parts[0]} and run again (it is regenerated)"


class SynthRoomsDataModule(IndoorDataModule):
    """Procedural RGB-D rooms with poses, labelled point clouds and two styles (source / target domains).

    Args:
        root: layout folder; None uses a cache folder named by the settings, so equal settings share one copy.
        num_scenes: number of rooms.
        sequences: trajectory names per room (e.g. ``["scan1", "scan2"]``).
        frames_per_sequence: frames per trajectory.
        height, width: rendered image size (Kinect intrinsics scaled to it).
        style: domain settings: ``"source"`` / ``"target"`` (generator version 1), ``"source_v2"`` /
            ``"target_v2"`` (version 2: per-class materials, the camera sometimes looks up) or a style file
            (``.yaml`` / ``.json``; ``style.save_style("source_v2", "my.yaml")`` writes one to edit).
        seed: generation seed.
        split: (train, val, test) scene counts or fractions.
        point_density: surface points per square metre of each scene's labelled point cloud (3D teacher input).
        class_set: training classes; ``"synthrooms"`` is the 20 classes SynthRooms draws.
        **kwargs: forwarded to :class:`IndoorDataModule` (batch_size, image_size, augment, num_neighbors, ...).
    """

    dataset_name = "synthrooms"

    def __init__(
        self,
        root: str | None = None,
        num_scenes: int = 12,
        sequences: Sequence[str] = ("scan1",),
        frames_per_sequence: int = 20,
        height: int = 120,
        width: int = 160,
        style: str = "source",
        seed: int = 0,
        split: Sequence[float] = (0.6, 0.2, 0.2),
        point_density: float = 1500.0,
        class_set: str = "synthrooms",
        **kwargs,
    ):
        self.generation = {
            "num_scenes": num_scenes, "sequences": tuple(sequences), "frames_per_sequence": frames_per_sequence,
            "height": height, "width": width, "style": style, "seed": seed, "split": tuple(split),
            "point_density": point_density,
        }  # fmt: skip
        settings = synthrooms_settings(**self.generation)  # validates before anything is written
        super().__init__(root=str(root if root is not None else default_root(settings)), class_set=class_set, **kwargs)

    def prepare_data(self) -> None:
        generate_synthrooms(self.root, **self.generation, progress=True)

    def setup(self, stage: str | None = None) -> None:
        if not (self.root / MANIFEST).is_file():  # used outside a Trainer, which would have called prepare_data
            self.prepare_data()
        super().setup(stage)
