"""SynthRooms: determinism, layout contents, camera and depth conventions, 2D-3D label consistency, appearance
that does not give the class away, styles, trajectories, settings checks and the DataModule."""

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from indoor_parsing.data.layout import pose_is_valid, read_layout
from indoor_parsing.data.sample import validate_batch
from indoor_parsing.data.synthrooms import SynthRoomsDataModule, generate_synthrooms, settings_hash
from indoor_parsing.data.synthrooms.generate import split_counts, synthrooms_settings
from indoor_parsing.data.synthrooms.meshes import box, part_aabbs
from indoor_parsing.data.synthrooms.render import Renderer, kinect_intrinsics
from indoor_parsing.data.synthrooms.scene import Scene, SceneObject, sample_scene
from indoor_parsing.data.synthrooms.style import get_style
from indoor_parsing.data.synthrooms.surfaces import sample_material
from indoor_parsing.data.synthrooms.trajectory import CELL, MIN_CLEARANCE, clearance_map, look_pose, sample_trajectory
from indoor_parsing.data.taxonomy import NYU40_ID, SYNTHROOMS_IDS
from indoor_parsing.io import DataFileError, load_depth, load_label, load_rgb

SMALL = dict(num_scenes=2, sequences=("scan1", "scan2"), frames_per_sequence=3, height=48, width=64, split=(1, 1, 0))
TINY = dict(num_scenes=1, frames_per_sequence=1, height=24, width=32, point_density=100.0, progress=False)


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> Path:
    return generate_synthrooms(tmp_path_factory.mktemp("synth") / "a", **SMALL, progress=False)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files(layout, tmp_path):
    again = generate_synthrooms(tmp_path / "b", **SMALL, progress=False)
    first, second = _files(layout), _files(again)
    assert sorted(first) == sorted(second) and len(first) > 2 * 2 * 3 * 4
    assert [k for k in first if first[k] != second[k]] == []


def test_layout_frames_points_and_manifest(layout):
    manifest, frames = read_layout(layout)
    assert manifest["dataset"] == "synthrooms" and manifest["label_space"] == "nyu40"
    assert manifest["generator_version"] >= 1 and manifest["seed"] == 0 and manifest["settings"]["height"] == 48
    assert manifest["splits"] == {"train": ["scene0000"], "val": ["scene0001"], "test": []}
    assert len(frames) == 2 * 2 * 3
    assert {(f.scene, f.sequence) for f in frames} == {(s, q) for s in ("scene0000", "scene0001")
                                                       for q in ("scan1", "scan2")}  # fmt: skip
    assert sorted({f.index for f in frames}) == [0, 1, 2]
    K = kinect_intrinsics(48, 64)
    allowed = set(SYNTHROOMS_IDS) | {0}
    for f in frames:
        assert f.split == ("train" if f.scene == "scene0000" else "val")
        assert np.allclose(f.K, K) and pose_is_valid(f.T)
        rgb, depth, label = load_rgb(layout / f.rgb), load_depth(layout / f.depth), load_label(layout / f.label)
        instance = np.asarray(Image.open(layout / f.extra["instance"]))
        assert rgb.shape == (48, 64, 3) and depth.dtype == np.float32 and instance.dtype == np.uint16
        assert set(np.unique(label).tolist()) <= allowed
        assert (label > 0).mean() > 0.99 and np.all((instance > 0) == (label > 0))  # a closed room: every ray hits
        assert (depth > 0).mean() > 0.85 and depth.max() < 12
    # The two trajectories of a scene are independent walks.
    by_seq = {q: [f.T for f in frames if f.scene == "scene0000" and f.sequence == q] for q in ("scan1", "scan2")}
    assert not np.allclose(by_seq["scan1"][0], by_seq["scan2"][0])
    for scene, rel in manifest["points"].items():
        cloud = np.load(layout / rel)
        n = len(cloud["xyz"])
        assert scene in manifest["splits"]["train"] + manifest["splits"]["val"] and n > 10_000
        assert cloud["xyz"].dtype == np.float32 and cloud["rgb"].shape == (n, 3) and cloud["rgb"].dtype == np.uint8
        assert cloud["label"].dtype == np.uint8 and cloud["instance"].shape == (n,)
        assert set(np.unique(cloud["label"]).tolist()) <= set(SYNTHROOMS_IDS)


def test_intrinsics_scale_with_pixel_centre_convention():
    assert np.allclose(kinect_intrinsics(480, 640), [[518.8579, 0, 319.5], [0, 518.8579, 239.5], [0, 0, 1]])
    K = kinect_intrinsics(48, 64)
    assert np.isclose(K[0, 0], 51.88579) and np.isclose(K[0, 2], 31.5) and np.isclose(K[1, 2], 23.5)
    assert np.isclose(kinect_intrinsics(240, 320)[0, 2], 159.5)


def _empty_room(size=(4.0, 5.0, 2.7)) -> Scene:
    W, D, H = size
    rng, style = np.random.default_rng(0), get_style("source")
    shell = [("floor", box(W / 2, D / 2, -0.1, W, D, 0.1, faces=1 << 5)),
             ("ceiling", box(W / 2, D / 2, H, W, D, 0.1, faces=1 << 4)),
             ("wall", box(W / 2, -0.05, 0, W, 0.1, H)), ("wall", box(W / 2, D + 0.05, 0, W, 0.1, H)),
             ("wall", box(-0.05, D / 2, 0, 0.1, D, H)), ("wall", box(W + 0.05, D / 2, 0, 0.1, D, H))]  # fmt: skip
    objects = [
        SceneObject(NYU40_ID[n], i + 1, [p], (sample_material(rng, style),) * 2) for i, (n, p) in enumerate(shell)
    ]
    one = np.ones(3)
    return Scene(
        size, objects, np.array([[2.0, 2.5, 2.4]]), one[None], np.array([0.0, 0.0, -1.0]), one, one * 0.3, style
    )


def test_depth_is_the_z_of_the_ray_hit_in_an_analytic_room():
    scene = _empty_room()
    pose = look_pose(np.array([1.3, 1.1, 1.4]), yaw=0.7, pitch=math.radians(-20), roll=math.radians(3))
    H, W = 30, 40
    K = kinect_intrinsics(H, W)
    out = Renderer(scene, nthreads=1).render(K, pose, H, W, rng=None)
    v, u = np.mgrid[0:H, 0:W]
    dirs = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones((H, W))], -1) @ pose[:3, :3].T
    c, hi = pose[:3, 3], np.array(scene.size)
    with np.errstate(divide="ignore"):
        t_axis = np.where(dirs > 0, (hi - c) / dirs, -c / dirs)  # distance to the wall / floor / ceiling ahead
    t_axis[~np.isfinite(t_axis) | (t_axis <= 0)] = np.inf
    expected = t_axis.min(-1)  # camera z of the hit, as the directions have unit camera z
    assert np.allclose(out["depth_clean"], expected, rtol=1e-4)
    axis = t_axis.argmin(-1)
    want = np.where(axis < 2, NYU40_ID["wall"], np.where(dirs[..., 2] < 0, NYU40_ID["floor"], NYU40_ID["ceiling"]))
    assert (out["label"] == want).mean() > 0.99  # only pixels exactly on an edge may differ


def test_sensor_noise_keeps_depth_close_to_the_hit():
    style = get_style("source")
    renderer = Renderer(sample_scene(np.random.default_rng(3), style), nthreads=1)
    pose = sample_trajectory(renderer.scene, 2, np.random.default_rng(3))[0]
    out = renderer.render(kinect_intrinsics(48, 64), pose, 48, 64, np.random.default_rng(0))
    clean, noisy = out["depth_clean"], out["depth"]
    kept = noisy > 0
    assert 0.85 < kept.mean() < 1.0  # holes and grazing dropout exist, but most pixels return
    assert np.all(np.abs(noisy - clean)[kept] <= 6 * style.depth_noise * clean[kept])
    assert np.abs(noisy - clean)[kept].max() > 0  # noise was added


def _project_labels(xyz, label, K, pose, H, W):
    """Nearest point per pixel (a z-buffer): (pixel index, label) of the covered pixels."""
    T = np.linalg.inv(pose)
    cam = xyz @ T[:3, :3].T.astype(np.float32) + T[:3, 3].astype(np.float32)
    z = cam[:, 2]
    front = z > 0.05
    u = np.round(K[0, 0] * cam[:, 0] / np.where(front, z, 1) + K[0, 2])
    v = np.round(K[1, 1] * cam[:, 1] / np.where(front, z, 1) + K[1, 2])
    ok = front & (u >= 0) & (u < W) & (v >= 0) & (v < H)
    pix, z, lab = (v * W + u)[ok].astype(np.int64), z[ok], label[ok]
    zbuf = np.full(H * W, np.inf, np.float32)
    np.minimum.at(zbuf, pix, z)
    nearest = z == zbuf[pix]
    image = np.zeros(H * W, np.int64)
    image[pix[nearest]] = lab[nearest]
    covered = np.flatnonzero(np.isfinite(zbuf))
    return covered, image[covered]


def test_point_cloud_projects_onto_the_frame_labels(layout):
    """Points, poses, intrinsics and labels agree: the nearest point per pixel carries the pixel's label."""
    manifest, frames = read_layout(layout)
    agree, covered, clouds = [], 0, {}
    for f in frames:
        cloud = clouds.setdefault(f.scene, dict(np.load(layout / manifest["points"][f.scene])))
        pix, lab = _project_labels(cloud["xyz"], cloud["label"], f.K, f.T, f.height, f.width)
        agree.append(lab == load_label(layout / f.label).ravel()[pix])
        covered += len(pix)
    assert covered > 0.9 * len(frames) * 48 * 64
    assert np.concatenate(agree).mean() >= 0.95  # misses are boundary pixels, where a point covers part of the pixel


def test_all_twenty_classes_appear_over_a_few_scenes():
    seen = set()
    for i in range(6):
        seen |= {o.label for o in sample_scene(np.random.default_rng([1, i]), get_style("source")).objects}
    assert seen == set(SYNTHROOMS_IDS)


def test_objects_do_not_interpenetrate_stay_in_the_room_and_stand_on_something():
    hung = {NYU40_ID[n] for n in ("door", "window", "picture", "whiteboard", "television")}
    for i in range(10):
        scene = sample_scene(np.random.default_rng([2, i]), get_style("source" if i % 2 else "target"))
        objs = scene.objects[3:]  # after floor, ceiling and walls
        boxes = [part_aabbs(o.parts) for o in objs]
        owner = np.concatenate([np.full(len(b), k) for k, b in enumerate(boxes)])
        b = np.concatenate(boxes)
        assert b[:, 0].min() >= -1e-3 and np.all(b[:, 1].max(0) <= np.array(scene.size) + 1e-3)
        lo, hi = b[:, None, 0], b[:, None, 1]
        overlap = np.all((lo < b[None, :, 1] - 1e-3) & (b[None, :, 0] < hi - 1e-3), -1)
        assert not np.any(overlap & (owner[:, None] != owner[None]))
        # Nothing floats: an object off the floor (not hung on a wall) rests on the top face of another one.
        touch_xy = np.all((lo[..., :2] < b[None, :, 1, :2]) & (b[None, :, 0, :2] < hi[..., :2]), -1)
        rests = touch_xy & (np.abs(lo[..., 2] - b[None, :, 1, 2]) < 1e-6) & (owner[:, None] != owner[None])
        for k, o in enumerate(objs):
            mine = owner == k
            bottom = mine & (b[:, 0, 2] <= b[mine, 0, 2].min() + 1e-6)
            if o.label not in hung and b[mine, 0, 2].min() > 1e-6:
                assert rests[bottom].any(), (i, o.label)


def test_appearance_does_not_give_geometry_only_pairs_away():
    """Per-instance chromaticity of pillow / bed, picture / wall, ... overlaps: colour is drawn regardless of class."""
    per_class: dict[int, list] = {}
    for i in range(16):
        renderer = Renderer(sample_scene(np.random.default_rng([5, i]), get_style("source")), nthreads=1)
        cloud = renderer.point_cloud(2000, np.random.default_rng(i))
        rgb = cloud["rgb"].astype(np.float64) + 1
        chroma = (rgb / rgb.sum(1, keepdims=True))[:, :2]  # shading-free colour
        for inst in np.unique(cloud["instance"]):
            m = cloud["instance"] == inst
            if m.sum() >= 5:
                per_class.setdefault(int(cloud["label"][m][0]), []).append(chroma[m].mean(0))
    for a, b in [
        ("pillow", "bed"),
        ("picture", "wall"),
        ("door", "wall"),
        ("floor mat", "floor"),
        ("cabinet", "table"),
    ]:
        A, B = np.array(per_class[NYU40_ID[a]]), np.array(per_class[NYU40_ID[b]])
        assert len(A) >= 4 and len(B) >= 4
        pooled = np.sqrt((A.var(0) * len(A) + B.var(0) * len(B)) / (len(A) + len(B)))
        assert np.all(np.abs(A.mean(0) - B.mean(0)) < 0.75 * pooled), (a, b)  # small effect size per channel


def test_source_and_target_styles_differ_in_colour_and_camera_height():
    stats = {}
    for style in ("source", "target"):
        redness, heights = [], []
        for i in range(3):
            renderer = Renderer(sample_scene(np.random.default_rng([4, i]), get_style(style)), nthreads=1)
            poses = sample_trajectory(renderer.scene, 4, np.random.default_rng(i))
            heights += poses[:, 2, 3].tolist()
            rgb = renderer.render(kinect_intrinsics(24, 32), poses[0], 24, 32, np.random.default_rng(0))["rgb"]
            redness.append(rgb[..., 0].astype(float).mean() - rgb[..., 2].mean())
        stats[style] = (np.mean(redness), np.mean(heights))
    assert stats["source"][0] > stats["target"][0] + 10  # warm vs cool palette and light
    assert stats["source"][1] > stats["target"][1] + 0.2


def test_trajectories_are_smooth_inside_the_room_and_clear_of_furniture():
    for i in range(6):
        style = get_style("source" if i % 2 else "target")
        scene = sample_scene(np.random.default_rng([6, i]), style)
        poses = sample_trajectory(scene, 30, np.random.default_rng(i))
        xyz = poses[:, :3, 3]
        clearance = clearance_map(scene)
        cells = (xyz[:, :2] / CELL).astype(int)
        assert clearance[cells[:, 0], cells[:, 1]].min() >= MIN_CLEARANCE - CELL
        assert np.all(xyz[:, 2] > style.camera_height[0] - 0.15) and np.all(xyz[:, 2] < style.camera_height[1] + 0.15)
        assert np.linalg.norm(np.diff(xyz, axis=0), axis=1).max() < 0.4
        R = poses[:, :3, :3]
        assert np.allclose(R @ R.transpose(0, 2, 1), np.eye(3), atol=1e-6) and np.allclose(np.linalg.det(R), 1)
        pitch = np.degrees(np.arcsin(R[:, 2, 2]))  # camera z (forward) against world up
        assert pitch.min() > style.camera_pitch[0] - 5 and pitch.max() < style.camera_pitch[1] + 5
        assert np.all(R[:, 2, 1] < -0.8)  # image y points down: small roll, moderate pitch


def test_style_seed_and_size_change_the_output(tmp_path):
    def rgb(name, **change):
        root = generate_synthrooms(tmp_path / name, **{**TINY, **change})
        return load_rgb(root / read_layout(root)[1][0].rgb)

    base = rgb("base")
    assert base.shape == (24, 32, 3)
    assert not np.array_equal(base, rgb("seed", seed=1))
    assert not np.array_equal(base, rgb("style", style="target"))
    assert rgb("size", height=30, width=40).shape == (30, 40, 3)


def test_existing_root_is_reused_or_refused(tmp_path):
    root = generate_synthrooms(tmp_path / "r", **TINY)
    stamp = (root / "manifest.json").stat().st_mtime_ns
    assert generate_synthrooms(root, **TINY) == root and (root / "manifest.json").stat().st_mtime_ns == stamp
    with pytest.raises(DataFileError, match=r"(?s)r: holds a SynthRooms layout .*seed"):
        generate_synthrooms(root, **{**TINY, "seed": 3})


def test_split_counts_and_settings_validation():
    assert split_counts(10, (0.6, 0.2, 0.2)) == (6, 2, 2)
    assert split_counts(3, [1, 1, 1]) == (1, 1, 1)
    assert split_counts(2, (0.6, 0.2, 0.2)) == (1, 1, 0)  # val is asked for and training keeps a scene
    with pytest.raises(ValueError, match="split"):
        split_counts(4, (0.5, 0.2, 0.2))
    with pytest.raises(ValueError, match="unknown SynthRooms style"):
        synthrooms_settings(num_scenes=1, frames_per_sequence=1, height=24, width=32, style="sunny")


def test_datamodule_generates_into_the_cache_and_yields_contract_batches(tmp_path, monkeypatch):
    monkeypatch.setenv("INDOOR_PARSING_CACHE", str(tmp_path))
    settings = dict(num_scenes=3, frames_per_sequence=2, height=32, width=40, split=(1, 1, 1), point_density=50.0)
    dm = SynthRoomsDataModule(**settings, batch_size=2, with_pose=True)
    expected = synthrooms_settings(**settings)
    assert dm.root == tmp_path / "synthrooms" / settings_hash(expected)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.num_classes == 20
    batch = validate_batch(next(iter(dm.train_dataloader())), ("image", "label", "depth", "intrinsics", "pose"))
    labels = batch["label"][batch["label"] != 255]
    assert batch["image"].shape == (2, 3, 32, 40) and labels.numel() > 0 and labels.max() < 20
