import numpy as np
import pytest
from PIL import Image

from indoor_parsing.data.formats.sens import SensFile, export_sens
from indoor_parsing.data.layout import read_layout
from indoor_parsing.data.prepare.__main__ import main as prepare_cli
from indoor_parsing.data.prepare.common import resize_image, scale_intrinsics
from indoor_parsing.data.prepare.scannet import prepare
from indoor_parsing.data.prepare.scannet_labels import SPLIT_SIZES, official_scan_splits, read_label_map
from indoor_parsing.data.scannet import ScanNetDataModule
from indoor_parsing.data.taxonomy import IGNORE, class_set
from indoor_parsing.io import DataFileError, load_depth, load_label, load_rgb
from tests.fixtures_formats import datamodule_from_config, write_label_zip, write_ply, write_scannet_frames, write_sens

KC = np.array([[18.0, 0.0, 9.7], [0.0, 17.0, 7.2], [0.0, 0.0, 1.0]])  # colour 20x15
KD = np.array([[7.2, 0.0, 3.9], [0.0, 6.8, 2.8], [0.0, 0.0, 1.0]])  # depth 8x6
RAW_TO_NYU = {0: 0, 1: 1, 2: 5, 22: 23, 41: 22, 4000: 0}  # raw tsv ids; 4000 is not in the tsv


def _frames(n=3, seed=0):
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        pose = np.eye(4)
        pose[:3, 3] = [0.1 * i, 0.2, 1.5]
        frames.append({"rgb": rng.integers(0, 256, (15, 20, 3), dtype=np.uint8),
                       "depth_mm": rng.integers(0, 5000, (6, 8)).astype(np.uint16), "pose": pose,
                       "label": rng.choice(list(RAW_TO_NYU), (15, 20)).astype(np.uint16)})  # fmt: skip
    frames[1]["pose"] = np.full((4, 4), -np.inf)  # tracking lost
    return frames


def _scan(root, frames, scan="scene0000_00"):
    d = root / "scans" / scan
    write_sens(d / f"{scan}.sens", frames, KC, KD)
    write_label_zip(d / f"{scan}_2d-label-filt.zip", {i: fr["label"] for i, fr in enumerate(frames)})
    xyz = np.arange(12, dtype=np.float32).reshape(4, 3)
    write_ply(d / f"{scan}_vh_clean_2.ply", xyz, np.full((4, 3), 7, np.uint8))
    write_ply(d / f"{scan}_vh_clean_2.labels.ply", xyz, np.zeros((4, 3), np.uint8), np.array([1, 5, 39, 60]))
    return d


def _nyu(raw):
    return np.vectorize(RAW_TO_NYU.get)(raw).astype(np.uint8)


def test_label_map_and_official_splits():
    lut = read_label_map()
    assert [lut[i] for i in (1, 2, 22, 3, 41, 5, 16, 4)] == [1, 5, 23, 2, 22, 8, 9, 7]
    assert lut[0] == 0 and len(lut) == 1358 and (lut[1:] >= -1).all()
    assert (lut[107], lut[188], lut[385]) == (38, 38, 3)  # ids with two nyu40ids: the last tsv row wins
    assert (lut == -1).sum() == 1358 - 1 - 549  # 549 distinct ids in the tsv
    splits = official_scan_splits()
    assert {s: list(splits.values()).count(s) for s in SPLIT_SIZES} == SPLIT_SIZES
    assert splits["scene0191_00"] == "train" and splits["scene0568_00"] == "val" and splits["scene0707_00"] == "test"


def test_sens_reader_and_truncation(tmp_path):
    frames = _frames()
    path = write_sens(tmp_path / "s.sens", frames, KC, KD)
    sens = SensFile(path)
    assert len(sens) == 3 and sens.header.color_size == (20, 15) and sens.header.depth_size == (8, 6)
    np.testing.assert_allclose(sens.header.intrinsic_depth[:3, :3], KD, rtol=1e-6)
    f2 = sens.read(2)
    np.testing.assert_array_equal(sens.depth_mm(f2), frames[2]["depth_mm"])
    np.testing.assert_allclose(f2.camera_to_world, frames[2]["pose"], rtol=1e-6)
    assert np.isneginf(sens.read(1).camera_to_world).all() and sens.color(f2).shape == (15, 20, 3)
    data = path.read_bytes()
    (tmp_path / "cut.sens").write_bytes(data[: len(data) - 200])
    with pytest.raises(DataFileError, match=r"cut.sens: truncated: frame 2 of 3"):
        SensFile(tmp_path / "cut.sens")
    (tmp_path / "head.sens").write_bytes(data[:40])
    with pytest.raises(DataFileError, match="head.sens: truncated or not a .sens"):
        SensFile(tmp_path / "head.sens")


def test_prepare_from_sens_reconciles_resolutions(tmp_path):
    frames = _frames()
    _scan(tmp_path, frames)
    out = tmp_path / "out"
    report = prepare(tmp_path, out)
    assert report.ok and report.skipped == {"invalid_pose": 1} and report.frames == {"train": 2}
    n_unknown = sum(int((fr["label"] == 4000).sum()) for k, fr in enumerate(frames) if k != 1)
    assert report.unknown_ids == {"4000": n_unknown, "points:60": 1}
    assert report.counts["train scans"] == {"found": 1, "expected": 1201}
    manifest, layout = read_layout(out)
    assert manifest["points"] == {"scene0000_00": "scenes/scene0000_00/points.npz"}
    assert [(f.scene, f.sequence, f.index, f.split) for f in layout] == [
        ("scene0000", "scene0000_00", 0, "train"), ("scene0000", "scene0000_00", 2, "train")]  # fmt: skip
    K = scale_intrinsics(KC, 8 / 20, 6 / 15)
    np.testing.assert_allclose(K[0], [18 * 0.4, 0, 0.4 * 10.2 - 0.5])  # c' = s (c + 0.5) - 0.5
    for f, fr in zip(layout, (frames[0], frames[2]), strict=True):
        assert (f.height, f.width) == (6, 8)
        np.testing.assert_allclose(f.K, K, rtol=1e-6)
        np.testing.assert_allclose(f.T, fr["pose"], rtol=1e-6)
        np.testing.assert_array_equal(load_label(out / f.label), resize_image(_nyu(fr["label"]), (8, 6), nearest=True))
        np.testing.assert_allclose(load_depth(out / f.depth), fr["depth_mm"] / 1000.0)
        assert load_rgb(out / f.rgb).shape == (6, 8, 3)
    pts = np.load(out / "scenes/scene0000_00/points.npz")
    np.testing.assert_array_equal(pts["label"], [1, 5, 39, 0])  # 60 is not an NYU-40 id
    assert pts["xyz"].dtype == np.float32 and pts["rgb"].dtype == np.uint8 and (pts["rgb"] == 7).all()
    again = prepare(tmp_path, out)  # resumed from the per-job records, report and manifest unchanged
    assert (again.written, again.resumed) == (0, 2)
    assert (again.skipped, again.unknown_ids) == (report.skipped, report.unknown_ids)
    assert read_layout(out)[0]["points"] == manifest["points"]


def test_export_then_prepare_matches_and_colour_resolution(tmp_path):
    frames = _frames(seed=1)
    scan_dir = _scan(tmp_path / "raw", frames)
    exported = tmp_path / "exported" / "scene0000_00"
    assert export_sens(scan_dir / "scene0000_00.sens", exported, frame_skip=2) == 2
    assert sorted(p.name for p in (exported / "color").iterdir()) == ["0.jpg", "2.jpg"]
    assert (exported / "pose" / "0.txt").read_text().startswith("1.000000 0.000000 0.000000 0.000000\n")
    assert (exported / "label-filt" / "2.png").is_file() and (exported / "intrinsic" / "intrinsic_depth.txt").is_file()
    out = tmp_path / "out"
    assert prepare_cli(["scannet", "--src", str(tmp_path / "exported"), "--dst", str(out), "--resolution", "color",
                      "--workers", "1"]) == 0  # fmt: skip
    manifest, layout = read_layout(out)
    assert [f.index for f in layout] == [0, 2] and manifest["resolution"] == "color"
    for f in layout:
        fr = frames[f.index]
        assert (f.height, f.width) == (15, 20)
        np.testing.assert_allclose(f.K, KC, rtol=1e-6)
        np.testing.assert_array_equal(load_label(out / f.label), _nyu(fr["label"]))
        upsampled = resize_image(fr["depth_mm"], (20, 15), nearest=True)
        np.testing.assert_array_equal(load_depth(out / f.depth), upsampled / np.float32(1000.0))
        src_rgb = np.asarray(Image.open(exported / "color" / f"{f.index}.jpg"))
        np.testing.assert_array_equal(load_rgb(out / f.rgb), src_rgb)  # JPEG bytes copied when not resized


def test_frames_25k_layout_and_datamodule(tmp_path):
    rng = np.random.default_rng(3)
    scan_frames = {}
    for i in (0, 100):
        pose = np.eye(4)
        pose[0, 3] = i / 100
        label = rng.choice([0, 1, 5, 22, 23, 50], (15, 20)).astype(np.uint8)
        scan_frames[i] = {"rgb": rng.integers(0, 256, (15, 20, 3), dtype=np.uint8), "label": label,
                          "depth_mm": rng.integers(0, 5000, (6, 8)).astype(np.uint16), "pose": pose}  # fmt: skip
    K_full = np.array([[1170.0, 0.0, 647.5], [0.0, 1170.0, 483.5], [0.0, 0.0, 1.0]])  # for the 1296x968 stream
    write_scannet_frames(tmp_path / "25k" / "scene0568_00", scan_frames, K_full, KD, "25k")
    bad = dict(scan_frames)
    bad[0] = {**bad[0], "label": bad[0]["label"][:-1]}  # label smaller than its colour image
    write_scannet_frames(tmp_path / "25k" / "scene0191_00", bad, KC, KD, "25k")
    out = tmp_path / "out"
    report = prepare(tmp_path / "25k", out, frame_skip=100)
    assert report.frames == {"val": 2, "train": 1} and not report.ok
    assert len(report.problems) == 1 and "scene0191_00/label/000000.png: size mismatch" in report.problems[0]
    assert report.unknown_ids == {"50": int(sum((fr["label"] == 50).sum() for fr in scan_frames.values())) +
                                  int((bad[100]["label"] == 50).sum())}  # fmt: skip
    assert any("principal point outside the 20x15 colour image" in n for n in report.notes)
    _, layout = read_layout(out)
    K_color = scale_intrinsics(K_full, 20 / 1296, 15 / 968)  # the 20x15 colour image, then resized to depth 8x6
    np.testing.assert_allclose(layout[-1].K, scale_intrinsics(K_color, 8 / 20, 6 / 15), rtol=1e-6)
    dm = ScanNetDataModule(str(out), batch_size=2, with_pose=True)  # default class set: ScanNet-20
    batch = next(iter(dm.val_dataloader()))
    stored = load_label(out / [f for f in layout if f.split == "val"][0].label)
    np.testing.assert_array_equal(batch["label"][0].numpy(), class_set("scannet20").map(stored))
    assert (batch["label"][0].numpy()[stored == 23] == IGNORE).all()  # books: NYU-40 only
    nyu40 = ScanNetDataModule(str(out), class_set="nyu40").dataset("validate")[0]["label"].numpy()
    assert (nyu40[stored == 23] == 22).all() and (nyu40[stored == 0] == IGNORE).all()
    assert batch["pose"].shape == (2, 4, 4) and float(batch["pose"][1, 0, 3]) == pytest.approx(1.0)
    from_config = datamodule_from_config("scannet", root=str(out), num_workers=0, image_size=[4, 4], batch_size=1)
    assert next(iter(from_config.train_dataloader()))["image"].shape == (1, 3, 4, 4)
    with pytest.raises(DataFileError, match="expected a prepared 'sunrgbd' layout"):
        from indoor_parsing.data.sunrgbd import SUNRGBDDataModule

        SUNRGBDDataModule(str(out))
