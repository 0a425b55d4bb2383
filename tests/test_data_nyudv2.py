import shutil

import numpy as np
import pytest
from PIL import Image

from indoor_parsing.data.layout import read_layout
from indoor_parsing.data.nyudv2 import NYUDv2DataModule
from indoor_parsing.data.prepare.__main__ import main as prepare_cli
from indoor_parsing.data.prepare.nyudv2 import K_RGB, official_splits, prepare
from indoor_parsing.data.taxonomy import IGNORE, class_set
from indoor_parsing.io import DataFileError, load_depth, load_label, load_rgb, read_json
from tests.fixtures_formats import datamodule_from_config, nyu_894_ids_for, write_nyu_mat


@pytest.fixture
def tiny_mat(tmp_path):
    """Three 4x5 frames: #1 and #2 are test frames of the official split, #3 a train frame; one unknown id 900."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 4, 5, 3), dtype=np.uint8)
    depths = rng.uniform(0.5, 9.0, (3, 4, 5)).astype(np.float32)
    labels = rng.choice([0, 21, 11, 3, 157, 8, 1], (3, 4, 5)).astype(np.uint16)  # 894 ids
    labels[2, 0, :2] = 900
    src = tmp_path / "src"
    src.mkdir()
    write_nyu_mat(
        src / "nyu_depth_v2_labeled.mat", images, depths, labels, ["kitchen_0001", "kitchen_0001", "office_0003"]
    )
    return src, images, depths, labels


def test_real_frame_comes_back_as_label40_and_label13(realdata, tmp_path):
    frame_dir, mapping = realdata / "nyuv2" / "nyu0001", realdata / "nyuv2" / "mapping"
    rgb = np.asarray(Image.open(frame_dir / "rgb.jpg").convert("RGB"))
    depth = np.load(frame_dir / "depth_m.npy")
    label40 = np.asarray(Image.open(frame_dir / "label40.png"))
    label13 = np.asarray(Image.open(frame_dir / "label13.png"))
    src = tmp_path / "nyu"
    src.mkdir()
    for name in ("splits.mat", "classMapping40.mat"):  # found next to the .mat: used and checked
        shutil.copy(mapping / name, src / name)
    write_nyu_mat(
        src / "nyu_depth_v2_labeled.mat", rgb[None], depth[None], nyu_894_ids_for(label40)[None], ["bedroom_0001"]
    )
    assert open(src / "nyu_depth_v2_labeled.mat", "rb").read(128)[124:128] == b"\x00\x02IM"

    report = prepare(src, tmp_path / "out")
    assert report.ok and report.frames == {"test": 1}
    manifest, frames = read_layout(tmp_path / "out")
    (f,) = frames
    assert (manifest["dataset"], manifest["label_space"]) == ("nyudv2", "nyu40")
    assert (f.split, f.scene, f.index, f.height, f.width) == ("test", "bedroom_0001", 1, 480, 640)
    stored = load_label(tmp_path / "out" / f.label)
    np.testing.assert_array_equal(stored, label40)
    nyu13 = class_set("nyu13").map(stored).astype(np.int64) + 1  # train ids 0..12 -> 13-class ids 1..13
    np.testing.assert_array_equal(np.where(stored == 0, 0, nyu13), label13)
    np.testing.assert_array_equal(load_rgb(tmp_path / "out" / f.rgb), rgb)
    assert np.abs(load_depth(tmp_path / "out" / f.depth) - depth).max() <= 0.0005 + 1e-6  # stored as uint16 mm
    np.testing.assert_allclose(f.K, [[518.857901, 0, 324.582449], [0, 519.469611, 252.736166], [0, 0, 1]])


def test_tiny_mat_splits_unknown_ids_report_and_resume(tiny_mat, tmp_path):
    src, images, depths, labels = tiny_mat
    out = tmp_path / "out"
    report = prepare(src / "nyu_depth_v2_labeled.mat", out)
    assert report.frames == {"test": 2, "train": 1} and report.written == 3
    assert report.unknown_ids == {"900": 2}
    assert report.counts["train frames"] == {"found": 1, "expected": 795}
    on_disk = read_json(out / "prepare_report.json")
    assert on_disk["unknown_ids"] == {"900": 2} and on_disk["problems"] == []
    _, frames = read_layout(out)
    assert [(f.split, f.scene, f.index) for f in frames] == [
        ("test", "kitchen_0001", 1), ("test", "kitchen_0001", 2), ("train", "office_0003", 3)]  # fmt: skip
    lut = np.zeros(1000, np.uint8)
    lut[[21, 11, 3, 157, 8, 1]] = [1, 2, 3, 4, 38, 40]  # Appendix A of shared/datasets.md
    for f, img, dep, lab in zip(frames, images, depths, labels, strict=True):
        np.testing.assert_array_equal(load_label(out / f.label), lut[lab])
        np.testing.assert_array_equal(load_rgb(out / f.rgb), img)
        assert np.abs(load_depth(out / f.depth) - dep).max() <= 0.0005 + 1e-6
    again = prepare(src / "nyu_depth_v2_labeled.mat", out)
    assert (again.written, again.resumed, again.unknown_ids) == (0, 3, {"900": 2})


def test_official_split_sizes():
    splits = official_splits()
    assert splits.count("train") == 795 and splits.count("test") == 654
    assert splits[:10] == ["test", "test", "train", "train", "train", "train", "train", "train", "test", "train"]


def test_bad_inputs_name_the_file(tiny_mat, tmp_path, realdata):
    src = tiny_mat[0]
    with pytest.raises(DataFileError, match="nyu_depth_v2_labeled.mat: file not found"):
        prepare(tmp_path / "nowhere", tmp_path / "out")
    truncated = tmp_path / "truncated.mat"
    data = (src / "nyu_depth_v2_labeled.mat").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFileError, match="truncated.mat"):
        prepare(truncated, tmp_path / "out")
    with pytest.raises(DataFileError, match="MATLAB v5"):
        prepare(realdata / "nyuv2" / "mapping" / "splits.mat", tmp_path / "out")
    bad_map = tmp_path / "classMapping40.mat"
    import scipy.io

    scipy.io.savemat(bad_map, {"mapClass": np.ones((1, 894), np.uint8)})
    with pytest.raises(DataFileError, match="classMapping40.mat: mapClass differs"):
        prepare(src / "nyu_depth_v2_labeled.mat", tmp_path / "out", class_mapping=bad_map)


def test_cli_with_workers_and_datamodule_class_sets(tiny_mat, tmp_path):
    src = tiny_mat[0]
    out = tmp_path / "out"
    assert prepare_cli(["nyudv2", "--src", str(src), "--dst", str(out), "--workers", "2"]) == 0
    stored = load_label(out / "label" / "0003.png")
    dm = NYUDv2DataModule(str(out), class_set="scannet20", batch_size=1)  # NYU labels in ScanNet-20 classes
    batch = next(iter(dm.train_dataloader()))
    expected = class_set("scannet20").map(stored)
    np.testing.assert_array_equal(batch["label"][0].numpy(), expected)
    assert (expected[stored == 22] == IGNORE).all()  # ceiling is not a ScanNet-20 class
    np.testing.assert_allclose(batch["intrinsics"][0].numpy(), K_RGB, rtol=1e-6)
    assert len(NYUDv2DataModule(str(out), class_set="nyu13").frames("test")) == 2
    from_config = datamodule_from_config("nyudv2", root=str(out), num_workers=0, image_size=[8, 8], batch_size=1)
    assert next(iter(from_config.val_dataloader()))["image"].shape == (1, 3, 8, 8)
    with pytest.raises(DataFileError, match="no prepared nyudv2 layout"):
        NYUDv2DataModule(str(tmp_path / "empty"))
