"""S3DIS prepared from the point clouds alone (``prepare s3dis --points``) feeds the 3D teacher: Area 5 is test."""

import numpy as np
import pytest

from indoor_parsing.data.points import PointCloudDataModule
from indoor_parsing.data.prepare.__main__ import main as prepare_cli
from indoor_parsing.data.s3dis import S3DISDataModule
from indoor_parsing.methods.teacher3d import Teacher3DModule
from tests.fixtures_formats import write_s3dis_room
from tests.test_teacher3d import SMALL, needs_minkowski


@pytest.fixture
def points_only(tmp_path):
    rng = np.random.default_rng(0)
    pts = tmp_path / "Stanford3dDataset_v1.2"

    def cloud(n=300):
        return np.concatenate([rng.uniform(0, 3, (n, 3)), rng.integers(0, 256, (n, 3))], axis=1)

    for area, room in (("Area_1", "office_1"), ("Area_2", "hallway_1"), ("Area_5", "office_2")):
        write_s3dis_room(pts / area / room, {"chair_1": cloud(), "floor_1": cloud()})
    out = tmp_path / "s3dis"
    assert prepare_cli(["s3dis", "--points", str(pts), "--dst", str(out), "--workers", "1"]) == 0
    return out


def test_points_only_layout_has_area_splits_and_loaders(points_only):
    frames = S3DISDataModule(root=str(points_only), batch_size=2, val_split="test", test_split="test")
    dm = PointCloudDataModule(frames, max_points=100)
    assert dm.scenes("train") == ["Area_1/office_1", "Area_2/hallway_1"] and dm.scenes("test") == ["Area_5/office_2"]
    train = next(iter(dm.train_dataloader()))
    assert train["coords"].shape == (200, 4) and sorted(train["scene"]) == ["Area_1/office_1", "Area_2/hallway_1"]
    test = next(iter(dm.test_dataloader()))
    assert test["scene"] == ["Area_5/office_2"] and test["coords"].shape == (600, 4)
    assert set(test["label"].tolist()) <= {i for i in range(13)}


@needs_minkowski
def test_teacher_fits_on_points_only(points_only):
    import lightning as L

    frames = S3DISDataModule(root=str(points_only), batch_size=2, val_split="test", test_split="test")
    dm = PointCloudDataModule(frames, max_points=300)
    module = Teacher3DModule(num_classes=13, class_names=dm.class_names, voxel_size=0.2, **SMALL)
    L.Trainer(fast_dev_run=True, logger=False, enable_progress_bar=False).fit(module, datamodule=dm)
