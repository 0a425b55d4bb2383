import numpy as np
import pytest
from PIL import Image

from indoor_parsing.data.layout import read_layout
from indoor_parsing.data.prepare.__main__ import main as prepare_cli
from indoor_parsing.data.prepare.s3dis import decode_semantic, prepare, semantic_lut
from indoor_parsing.data.s3dis import S3DISDataModule
from indoor_parsing.data.taxonomy import IGNORE, S3DIS13
from indoor_parsing.io import DataFileError, load_depth, load_label
from tests.fixtures_formats import datamodule_from_config, write_2d3ds_frame, write_s3dis_room

ID = {name: i + 1 for i, name in enumerate(S3DIS13)}
K = np.array([[5.0, 0.0, 2.5], [0.0, 5.0, 2.5], [0.0, 0.0, 1.0]])
# indices into semantic_labels.json: 0 <UNK>, 1 beam_10_hallway_6_1, 357 bookcase_13_office_3_3,
# 973 ceiling_24_office_3_3, 2393 chair_5_conferenceRoom_1_3, 0x0D0D0D no data, 20000 not in the list
SEM = np.array([[0, 1, 357, 973, 2393, 0x0D0D0D]] * 6)
SEM_IDS = np.array([[0, ID["beam"], ID["bookcase"], ID["ceiling"], ID["chair"], 0]] * 6, np.uint8)


def test_real_semantic_frame_decodes_to_13_classes(realdata):
    root = realdata / "stanford2d3ds"
    sem = np.asarray(Image.open(root / "area3_office3" / "test_sem.png").convert("RGB"))
    shipped = semantic_lut()
    np.testing.assert_array_equal(shipped, semantic_lut(root / "semantic_labels.json"))
    label = decode_semantic(sem, shipped)
    names = {S3DIS13[i - 1] for i in np.unique(label) if i}
    assert names == {"bookcase", "ceiling", "chair", "clutter", "column", "door", "floor", "sofa", "table", "wall"}
    index = (sem[..., 0].astype(int) << 16) | (sem[..., 1].astype(int) << 8) | sem[..., 2]
    assert ((label == 0) == ((index == 0) | (index == 0x0D0D0D))).all()  # <UNK> and no-data only
    assert (label[index == 2805] == ID["clutter"]).all() and (label[index == 7322] == ID["floor"]).all()


def _world_to_cam(t):
    a = np.deg2rad(30)
    m = np.eye(4)
    m[:3, :3] = [[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]
    m[:3, 3] = t
    return m


def test_prepare_areas_and_rooms(tmp_path):
    rng = np.random.default_rng(0)
    src, pts_root = tmp_path / "2d3ds", tmp_path / "Stanford3dDataset_v1.2"
    depth = rng.integers(100, 3000, (6, 6)).astype(np.uint16)
    depth[0, 0] = 65535
    sem = SEM.copy()
    sem[5, 5] = 20000
    frames = {"area_1": ("office_1", 3, sem), "area_5a": ("conferenceRoom_1", 18, SEM)}
    for area, (room, j, s) in frames.items():
        rgb = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
        write_2d3ds_frame(src / area, "bbda2627", room, j, rgb, depth, s, K, _world_to_cam([1, 2, 3]))
    chair = np.array([[0.1, 0.2, 0.3, 10, 20, 30], [0.4, 0.5, 0.6, 40, 50, 60]])
    write_s3dis_room(pts_root / "Area_1" / "office_1", {"chair_1": chair, "stairs_1": chair[:1], "tv_1": chair[:1],
                                                        "ceiling_1": chair})  # fmt: skip
    ceiling = pts_root / "Area_1" / "office_1" / "Annotations" / "ceiling_1.txt"
    ceiling.write_bytes(ceiling.read_bytes().replace(b"0.400", b"0.4\xef00", 1))  # the S3DIS v1.2 stray byte
    out = tmp_path / "out"
    assert prepare_cli(["s3dis", "--src", str(src), "--points", str(pts_root), "--dst", str(out)]) == 0
    manifest, layout = read_layout(out)
    report = manifest["prepare_report"]
    assert manifest["label_space"] == "s3dis13" and manifest["points"] == {
        "Area_1/office_1": "scenes/Area_1/office_1/points.npz"}  # fmt: skip
    by_split = {f.split: f for f in layout}
    assert set(by_split) == {"train", "test"} and report == "prepare_report.json"
    f = by_split["test"]
    assert (f.scene, f.index, f.extra["area"]) == ("Area_5/conferenceRoom_1", 18, "area_5a")
    np.testing.assert_array_equal(load_label(out / f.label), SEM_IDS)
    got = load_depth(out / f.depth)
    assert got[0, 0] == 0 and np.abs(got - depth / 512.0)[1:, 1:].max() <= 0.0005 + 1e-6  # 1/512 m -> mm PNG
    np.testing.assert_allclose(f.T, np.linalg.inv(_world_to_cam([1, 2, 3])), atol=1e-9)
    np.testing.assert_allclose(f.K, K)
    train_label = load_label(out / by_split["train"].label)
    assert train_label[5, 5] == 0 and (train_label[:5] == SEM_IDS[:5]).all()
    from indoor_parsing.io import read_json

    rep = read_json(out / "prepare_report.json")
    assert rep["unknown_ids"] == {"20000": 1, "points:tv": 1}
    assert any("ceiling_1.txt: line 2: repaired" in n for n in rep["notes"])
    pts = np.load(out / "scenes/Area_1/office_1/points.npz")
    np.testing.assert_array_equal(pts["label"], [ID["ceiling"]] * 2 + [ID["chair"]] * 2 + [ID["clutter"], 0])
    np.testing.assert_allclose(pts["xyz"][:2], chair[:, :3], atol=1e-6)  # repaired line: 0.4 0.5 0.6 again
    np.testing.assert_array_equal(pts["rgb"][2:4], chair[:, 3:])

    dm = S3DISDataModule(str(out), batch_size=1)
    sample = dm.dataset("test")[0]
    np.testing.assert_array_equal(sample["label"].numpy(), np.where(SEM_IDS == 0, IGNORE, SEM_IDS - 1))
    from_config = datamodule_from_config("s3dis", root=str(out), num_workers=0, image_size=[4, 4], batch_size=1)
    assert next(iter(from_config.train_dataloader()))["label"].shape == (1, 4, 4)
    with pytest.raises(DataFileError, match="label space 's3dis13'"):
        S3DISDataModule(str(out), class_set="nyu40").setup()


def test_resize_option_and_missing_depth_file(tmp_path):
    src = tmp_path / "2d3ds"
    rgb = np.zeros((6, 6, 3), np.uint8)
    write_2d3ds_frame(src / "area_2", "ab12", "hallway_1", 0, rgb, np.full((6, 6), 512), SEM, K, np.eye(4))
    write_2d3ds_frame(src / "area_2", "ab12", "hallway_1", 1, rgb, np.full((6, 6), 512), SEM, K, np.eye(4))
    (src / "area_2/data/depth/camera_ab12_hallway_1_frame_1_domain_depth.png").unlink()
    report = prepare(src, tmp_path / "out", size=3)
    (problem,) = report.problems
    assert problem.endswith("camera_ab12_hallway_1_frame_1_domain_depth.png: file not found")
    _, (f,) = read_layout(tmp_path / "out")
    assert (f.height, f.width) == (3, 3)
    np.testing.assert_allclose(f.K, [[2.5, 0, 1.0], [0, 2.5, 1.0], [0, 0, 1]])  # s (c + 0.5) - 0.5
    np.testing.assert_allclose(load_depth(tmp_path / "out" / f.depth), 1.0)
