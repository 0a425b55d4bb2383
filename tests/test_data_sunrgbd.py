import numpy as np
from PIL import Image

from indoor_parsing.data.layout import read_layout
from indoor_parsing.data.prepare.__main__ import main as prepare_cli
from indoor_parsing.data.prepare.sunrgbd import decode_depth, folder_key, prepare
from indoor_parsing.data.sunrgbd import SUNRGBDDataModule
from indoor_parsing.data.taxonomy import IGNORE, class_set
from indoor_parsing.io import load_depth, load_label, load_rgb
from tests.fixtures_formats import datamodule_from_config, sun_depth_png, write_sunrgbd

K = np.array([[30.0, 0.0, 4.5], [0.0, 31.0, 3.5], [0.0, 0.0, 1.0]])


def _frames(rng):
    """Two sensors with different image sizes, as in SUN RGB-D (sizes are read from the files)."""
    out = []
    for key, split, (H, W) in (("kv1/NYUdata/NYU0001", "test", (6, 8)), ("realsense/sa/2014_10_21-1", "train", (5, 7))):
        depth_mm = rng.integers(500, 9000, (H, W)).astype(np.uint16)
        depth_mm[0, 0] = 0
        label37 = rng.integers(0, 38, (H, W)).astype(np.uint8)
        out.append({"key": key, "split": split, "rgb": rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
                    "depth_mm": depth_mm, "label37": label37, "K": K})  # fmt: skip
    return out


def test_real_sun_depth_decodes_into_the_documented_range(realdata):
    png = np.asarray(Image.open(realdata / "sunrgbd" / "open3d_frame" / "SUN_depth.png"))
    depth = decode_depth(png, max_depth=None)
    valid = depth[depth > 0]
    assert abs(valid.min() - 1.06) < 0.01 and abs(valid.max() - 9.87) < 0.01
    clipped = decode_depth(png)  # toolbox limit: beyond 8 m is invalid
    assert clipped.max() <= 8.0 and (clipped == 0).sum() > (depth == 0).sum()
    np.testing.assert_array_equal(clipped[(depth > 0) & (depth <= 8)], depth[(depth > 0) & (depth <= 8)])


def test_bit_rotation_round_trip():
    mm = np.array([[0, 1, 1000, 8191, 9870]], np.uint16)
    np.testing.assert_allclose(decode_depth(sun_depth_png(mm), max_depth=None), mm / 1000.0)
    assert folder_key("/n/fs/sun3d/data/SUNRGBD/kv1/NYUdata/NYU0003//") == "SUNRGBD/kv1/NYUdata/NYU0003"


def test_prepare_tree_with_toolbox_labels(tmp_path):
    frames = _frames(np.random.default_rng(1))
    frames[1]["label37"][0, :3] = 40  # not one of the 37 classes -> 0, counted
    src = write_sunrgbd(tmp_path / "sun", frames)
    out = tmp_path / "out"
    report = prepare(src, out)
    assert report.ok and report.frames == {"test": 1, "train": 1} and report.unknown_ids == {"40": 3}
    assert report.counts["train frames"] == {"found": 1, "expected": 5285}
    manifest, layout = read_layout(out)
    assert manifest["dataset"] == "sunrgbd" and manifest["label_space"] == "nyu40"
    by_key = {f.scene: f for f in layout}
    for fr in frames:
        f = by_key[fr["key"]]
        expected_label = np.where(fr["label37"] > 37, 0, fr["label37"])
        assert f.split == fr["split"] and (f.height, f.width) == fr["label37"].shape
        np.testing.assert_array_equal(load_label(out / f.label), expected_label)
        depth = load_depth(out / f.depth)
        np.testing.assert_allclose(depth, np.where(fr["depth_mm"] > 8000, 0, fr["depth_mm"]) / 1000.0, atol=1e-6)
        src_jpg = src / "SUNRGBD" / fr["key"] / "image" / (fr["key"].rsplit("/", 1)[1] + ".jpg")
        assert (out / f.rgb).read_bytes() == src_jpg.read_bytes()  # copied, not re-encoded
        np.testing.assert_allclose(f.K, [[30, 0, 3.5], [0, 31, 2.5], [0, 0, 1]])  # 1-based toolbox -> 0-based
        assert f.extra == {"sensor": fr["key"].split("/")[0], "scene_type": "office"}
    # SUN RGB-D labels (NYU-40 ids 1..37) through the 37-class set and the ScanNet-20 set (SUN -> ScanNet)
    f, fr = by_key[frames[0]["key"]], frames[0]
    dm = SUNRGBDDataModule(str(out), batch_size=1)
    sample = dm.dataset("test")[0]
    np.testing.assert_array_equal(sample["label"].numpy(), class_set("sun37").map(fr["label37"]))
    scannet = SUNRGBDDataModule(str(out), class_set="scannet20").dataset("test")[0]["label"].numpy()
    assert (scannet[fr["label37"] == 22] == IGNORE).all() and (scannet[fr["label37"] == 24] == 14).all()
    assert dm.num_classes == 37 and load_rgb(out / f.rgb).shape == (6, 8, 3)
    from_config = datamodule_from_config("sunrgbd", root=str(out), num_workers=0, image_size=[4, 4], batch_size=1)
    assert next(iter(from_config.train_dataloader()))["image"].shape == (1, 3, 4, 4)


def test_per_frame_seg_mat_names_and_size_mismatch(tmp_path):
    rng = np.random.default_rng(2)
    frames = _frames(rng)
    names = ["wall", "fridge", "tv", "mystery thing", "night_stand"]
    for fr in frames:
        fr["seg_index"] = rng.integers(0, 6, fr["label37"].shape)
        fr["seg_names"] = names
    frames[1]["seg_index"] = frames[1]["seg_index"][:, :-1]  # RGB/label size mismatch
    src = write_sunrgbd(tmp_path / "sun", frames, with_seg2d=False)
    out = tmp_path / "out"
    assert prepare_cli(["sunrgbd", "--src", str(src), "--dst", str(out), "--workers", "1"]) == 1
    report = prepare(src, out)
    assert report.frames == {"test": 1}
    (problem,) = report.problems
    assert "seg.mat: size mismatch" in problem and "2014_10_21-1" in problem
    seg = frames[0]["seg_index"]
    assert report.unknown_ids == {"name:mystery thing": int((seg == 4).sum())}
    lut = np.array([0, 1, 24, 25, 0, 32])
    _, layout = read_layout(out)
    np.testing.assert_array_equal(load_label(out / layout[0].label), lut[seg])
