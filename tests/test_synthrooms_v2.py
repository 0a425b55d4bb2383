"""SynthRooms generator version 2: opt-in, deterministic, version 1 unchanged, style files, per-class materials
that keep the geometry-only pairs hard (tools/synthrooms_hardness.py), and a camera that sees the ceiling."""

import hashlib
import json
import math
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indoor_parsing.data.layout import read_layout
from indoor_parsing.data.synthrooms import generate_synthrooms, settings_hash, synthrooms_settings
from indoor_parsing.data.synthrooms.materials import GEOMETRY_PAIRS
from indoor_parsing.data.synthrooms.scene import sample_scene
from indoor_parsing.data.synthrooms.style import RIG_KEYS, MaterialGroup, get_style, load_style, save_style
from indoor_parsing.data.synthrooms.surfaces import sample_material, texture_tiles
from indoor_parsing.data.synthrooms.trajectory import sample_trajectory
from indoor_parsing.io import load_depth, load_label, load_rgb
from indoor_parsing.tools.synthrooms_hardness import colour_bins, main, pair_separability

TINY = dict(num_scenes=1, frames_per_sequence=2, height=24, width=32, point_density=100.0)
# The TINY layouts' arrays as version 1 writes them (tests/data/synthrooms_v1_reference.npz, every 10th point of the
# clouds), and their settings hashes, unchanged since before version 2 existed (commit ee5c0da). The arrays are
# compared with a tolerance: numpy's SIMD paths differ between CPUs, which moves a few shaded colours by one level
# (exact digests failed on a machine whose CPU differs from the one that wrote them). A changed palette, camera or
# random stream moves far more than that.
V1_REFERENCE = Path(__file__).parent / "data" / "synthrooms_v1_reference.npz"
V1_HASHES = {"source": "22e51bf25fb2", "target": "798e7efed154"}


def _arrays(root: Path) -> dict[str, np.ndarray]:
    manifest, frames = read_layout(root)
    out = {
        "rgb": np.stack([load_rgb(root / f.rgb) for f in frames]),
        "depth": np.stack([load_depth(root / f.depth) for f in frames]),
        "label": np.stack([load_label(root / f.label) for f in frames]),
        "instance": np.stack([np.asarray(Image.open(root / f.extra["instance"])) for f in frames]),
    }
    ((_, rel),) = sorted(manifest["points"].items())
    cloud = np.load(root / rel)
    out["points_count"] = np.asarray(len(cloud["xyz"]))
    out.update({f"points_{k}": cloud[k][::10] for k in ("xyz", "rgb", "label", "instance")})
    return out


def _digest(root: Path) -> str:
    """Exact digest of a layout's arrays (for comparisons made on one machine)."""
    h = hashlib.sha256()
    for a in _arrays(root).values():
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def _reference(style: str) -> dict[str, np.ndarray]:
    with np.load(V1_REFERENCE) as ref:
        return {k.split("/", 1)[1]: ref[k] for k in ref.files if k.startswith(f"{style}/")}


def assert_close_to_reference(got: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> None:
    assert got["points_count"] == ref["points_count"]
    for key in ("label", "instance", "points_label", "points_instance"):
        assert got[key].shape == ref[key].shape and np.mean(got[key] == ref[key]) >= 0.99, key
    for key, tol in (("rgb", 2), ("points_rgb", 2)):
        diff = np.abs(got[key].astype(int) - ref[key].astype(int))
        assert np.mean(diff <= tol) >= 0.99 and diff.mean() < 0.5, key
    depth_ok = np.isclose(got["depth"], ref["depth"], rtol=1e-3, atol=1e-3)
    assert np.mean(depth_ok) >= 0.99 and np.allclose(got["points_xyz"], ref["points_xyz"], atol=1e-3)


@pytest.mark.parametrize("style", ["source", "target"])
def test_version_1_output_and_cache_key_are_unchanged(tmp_path, style):
    root = generate_synthrooms(tmp_path / style, **TINY, style=style, progress=False)
    settings = synthrooms_settings(**TINY, style=style)
    assert settings_hash(settings) == V1_HASHES[style]
    assert settings["generator_version"] == 1 and "version" not in settings["style"]
    assert_close_to_reference(_arrays(root), _reference(style))


def test_version_2_is_deterministic_and_differs_from_version_1(tmp_path):
    a = generate_synthrooms(tmp_path / "a", **TINY, style="source_v2", progress=False)
    b = generate_synthrooms(tmp_path / "b", **TINY, style="source_v2", progress=False)
    files = [p.relative_to(a) for p in sorted(a.rglob("*")) if p.is_file()]
    assert len(files) > 8 and all((a / p).read_bytes() == (b / p).read_bytes() for p in files)
    assert read_layout(a)[0]["generator_version"] == 2
    stamp = (a / "manifest.json").stat().st_mtime_ns  # a version-2 layout is found again by its settings
    assert generate_synthrooms(a, **TINY, style="source_v2", progress=False) == a
    assert (a / "manifest.json").stat().st_mtime_ns == stamp
    v1 = synthrooms_settings(**TINY, style="source")
    assert settings_hash(synthrooms_settings(**TINY, style="source_v2")) != settings_hash(v1)
    with pytest.raises(AssertionError):
        assert_close_to_reference(_arrays(a), _reference("source"))


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_style_file_round_trips_and_changes_the_output(tmp_path, suffix):
    path = save_style("source_v2", tmp_path / f"style{suffix}")
    assert load_style(path) == get_style("source_v2") == get_style(str(path))
    assert settings_hash(synthrooms_settings(**TINY, style=str(path))) == settings_hash(
        synthrooms_settings(**TINY, style="source_v2")
    )  # the hash is of the style's content, not its name or path
    record = json.loads(json.dumps(get_style("source_v2").to_dict()))
    record["materials"]["paint"]["palette"] = [[0.9, 0.1, 0.1]]  # red walls
    changed = tmp_path / f"red{suffix}"
    changed.write_text(json.dumps(record))
    base = generate_synthrooms(tmp_path / "base", **TINY, style=str(path), progress=False)
    red = generate_synthrooms(tmp_path / "red", **TINY, style=str(changed), progress=False)
    assert settings_hash(synthrooms_settings(**TINY, style=str(changed))) != settings_hash(
        synthrooms_settings(**TINY, style=str(path))
    )
    assert _digest(base) != _digest(red)


def test_style_files_are_checked():
    with pytest.raises(ValueError, match="need version: 2"):
        replace(get_style("source"), look_up_share=0.2)
    with pytest.raises(ValueError, match="unknown class 'sofa bed'"):
        get_style({**get_style("source_v2").to_dict(), "class_materials": {"sofa bed": {"paint": 1}}})
    with pytest.raises(ValueError, match="unknown: \\['marble'\\]"):
        get_style({**get_style("source_v2").to_dict(), "class_materials": {"floor": {"marble": 1}}})
    with pytest.raises(ValueError, match="unknown style keys"):
        get_style({**get_style("source").to_dict(), "sky": 1})
    with pytest.raises(ValueError, match="unknown SynthRooms style"):
        get_style("source_v3")


def _albedo_histograms(style, name: str, instances: int, levels: int = 16) -> np.ndarray:
    """(instances, levels**3) colour histograms of the albedo of both material slots of many instances of a class."""
    rng = np.random.default_rng([0, zlib.crc32(name.encode())])  # each class its own draws
    tiles = texture_tiles([sample_material(rng, style, name, s) for _ in range(instances) for s in (0, 1)], 8)
    rgb = (np.clip(tiles, 0, 1) * 255).astype(np.uint8).reshape(instances, -1, 3)
    return np.stack([np.bincount(colour_bins(x, levels), minlength=levels**3) for x in rgb])


@pytest.mark.parametrize("style", ["source_v2", "target_v2"])
def test_geometry_only_pairs_share_one_material_distribution(style):
    """Colour separates a geometry-only pair at chance (held-out instances), floor / wall far above it."""
    st = get_style(style)
    for a, b in GEOMETRY_PAIRS:
        acc = pair_separability(_albedo_histograms(st, a, 400), _albedo_histograms(st, b, 400))["balanced_accuracy"]
        assert abs(acc - 0.5) < 0.07, (style, a, b, acc)
    for a, b in [("floor", "wall"), ("bed", "floor"), ("television", "wall")]:
        acc = pair_separability(_albedo_histograms(st, a, 400), _albedo_histograms(st, b, 400))["balanced_accuracy"]
        assert acc > 0.85, (style, a, b, acc)


def test_version_2_cameras_look_up_sometimes():
    pitches = {}
    for style in ("source", "source_v2"):
        st = get_style(style)
        poses = [sample_trajectory(sample_scene(np.random.default_rng([7, i]), st), 6, np.random.default_rng(i))
                 for i in range(8)]  # fmt: skip
        pitches[style] = np.degrees(np.arcsin(np.concatenate(poses)[:, 2, 2]))
    assert pitches["source"].max() < -3  # version 1 source never looks above the horizon
    assert (pitches["source_v2"] > 5).mean() > 0.05


def test_the_rig_style_is_the_source_world_under_the_target_camera_and_sensor():
    """target_rig_v2 (S4-Net's new scene): target_v2's camera and noise; materials, lights, everything else source_v2's;
    its cameras stand lower than source_v2's."""
    rig, src, tgt = (get_style(s).to_dict() for s in ("target_rig_v2", "source_v2", "target_v2"))
    assert set(rig) == set(src) and all(src[k] != tgt[k] for k in RIG_KEYS)
    for key in set(rig) - {"name"}:
        assert rig[key] == (tgt if key in RIG_KEYS else src)[key], key
    heights = {}
    for style in ("source_v2", "target_rig_v2"):
        st = get_style(style)
        poses = [sample_trajectory(sample_scene(np.random.default_rng([7, i]), st), 6, np.random.default_rng(i))
                 for i in range(8)]  # fmt: skip
        heights[style] = np.median(np.concatenate(poses)[:, 2, 3])
    assert heights["target_rig_v2"] < 1.15 < 1.3 < heights["source_v2"], heights


def test_hardness_tool_prints_finite_numbers(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("INDOOR_PARSING_CACHE", str(tmp_path / "cache"))
    argv = ["--style", "source_v2", "--num-scenes", "3", "--frames", "2", "--height", "24", "--width", "32"]
    assert main([*argv, "--folds", "3", "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "| floor / wall | appearance |" in printed and "| pillow / bed | geometry |" in printed
    rows = json.loads((tmp_path / "out" / "hardness.json").read_text())["results"]["source_v2"]["rows"]
    floor_wall = next(r for r in rows if r["pair"] == "floor / wall")
    assert math.isfinite(floor_wall["balanced_accuracy"]) and 0 <= floor_wall["balanced_accuracy"] <= 1
    assert (tmp_path / "out" / "hardness.csv").read_text().startswith("style,pair,kind,balanced_accuracy")


def test_material_group_checks_its_palette():
    with pytest.raises(ValueError, match="palette"):
        MaterialGroup((), 0.1, (1, 0, 0, 0), (0.1, 0.2), (0.1, 0.2))
