"""SynthRooms: procedural RGB-D multi-view indoor rooms, the embedded default dataset (generated, no download).

Rooms with doors, windows, wall items and furniture built from boxes and cylinders (scene.py, objects.py,
meshes.py), ray-cast with open3d (render.py) along smooth camera paths (trajectory.py), written in the prepared
layout with per-scene labelled point clouds (generate.py) and served by :class:`SynthRoomsDataModule`.
"""

from indoor_parsing.data.synthrooms.datamodule import SynthRoomsDataModule
from indoor_parsing.data.synthrooms.generate import generate_synthrooms, settings_hash, synthrooms_settings
from indoor_parsing.data.synthrooms.style import STYLES, Style, get_style, load_style, save_style

__all__ = [
    "STYLES",
    "Style",
    "SynthRoomsDataModule",
    "generate_synthrooms",
    "get_style",
    "load_style",
    "save_style",
    "settings_hash",
    "synthrooms_settings",
]
