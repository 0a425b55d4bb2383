"""The 3D teacher: point-cloud DataModule, MinkUNet forward, brief training beats chance, external checkpoints."""

import numpy as np
import pytest
import torch

from indoor_parsing.data.base import IndoorDataModule
from indoor_parsing.data.layout import Frame
from indoor_parsing.data.points import PointCloudDataModule, points_key
from indoor_parsing.data.synthrooms.generate import generate_synthrooms
from indoor_parsing.io import DataFileError
from indoor_parsing.methods.teacher3d import Teacher3DModule

SMALL = {"planes": (8, 16, 16, 16, 16, 16, 16, 16), "layers": (1,) * 8, "init_dim": 8, "conv0_kernel": 3}


def minkowski_available() -> bool:
    from indoor_parsing.models.minkowski_backend import import_minkowski

    try:
        import_minkowski()
    except ImportError:
        return False
    return True


needs_minkowski = pytest.mark.skipif(not minkowski_available(), reason="MinkowskiEngine is not installed")


@pytest.fixture(scope="module")
def synthrooms(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthrooms3d")
    return generate_synthrooms(root, num_scenes=3, frames_per_sequence=1, height=24, width=32, split=[1, 1, 1],
                               point_density=300, progress=False)  # fmt: skip


def test_point_datamodule_serves_scenes_of_each_split(synthrooms):
    dm = PointCloudDataModule(
        IndoorDataModule(root=str(synthrooms), class_set="synthrooms", batch_size=2), max_points=500
    )
    assert dm.scenes("train") == ["scene0000"] and dm.scenes("val") == ["scene0001"]
    batch = next(iter(dm.train_dataloader()))
    N = batch["coords"].shape[0]
    assert N == 500 and batch["coords"].shape == (N, 4) and batch["feats"].shape == (N, 3)
    assert batch["label"].dtype == torch.int64 and int(batch["label"][batch["label"] != 255].max()) < 20
    assert batch["feats"].abs().max() <= 0.5 and set(batch["coords"][:, 0].tolist()) == {0.0}
    full = next(iter(dm.val_dataloader()))
    assert full["coords"].shape[0] > 500  # evaluation keeps every point


def test_points_key_prefers_the_sequence():
    frame = Frame("train", "scene0000", "scene0000_01", 0, "rgb.png", 4, 4, (1.0,) * 9)
    assert points_key(frame, {"scene0000_01": "a", "scene0000": "b"}) == "scene0000_01"  # ScanNet: a cloud per scan
    assert points_key(frame, {"scene0000": "b"}) == "scene0000"  # SynthRooms / S3DIS: a cloud per scene
    assert points_key(frame, {}) is None


def test_missing_point_cloud_is_a_clear_error(synthrooms, tmp_path):
    dm = PointCloudDataModule(IndoorDataModule(root=str(synthrooms), class_set="synthrooms"))
    dm.setup()
    dm.data.manifest = {**dm.data.manifest, "points": {"scene0000": "nowhere/points.npz"}}
    with pytest.raises(DataFileError, match="nowhere/points.npz"):
        next(iter(dm.train_dataloader()))


@needs_minkowski
def test_teacher_forward_gives_per_point_logits_and_features():
    module = Teacher3DModule(num_classes=5, voxel_size=0.1, **SMALL).eval()
    g = torch.Generator().manual_seed(0)
    xyz = torch.rand(300, 3, generator=g) * 2
    coords = torch.cat([torch.zeros(300, 1), xyz], 1)
    coords[150:, 0] = 1  # two scenes in one batch
    with torch.no_grad():
        logits, feats = module(coords, torch.rand(300, 3, generator=g) - 0.5)
        again, _ = module(coords.flip(0), torch.zeros(300, 3))
    assert logits.shape == (300, 5) and feats.shape == (300, 16)
    assert again.shape == (300, 5)


@needs_minkowski
def test_teacher_trained_briefly_beats_chance(synthrooms):
    import lightning as L  # after indoor_parsing: its import guard must run before torchvision loads

    torch.manual_seed(0)
    frames = IndoorDataModule(root=str(synthrooms), class_set="synthrooms", batch_size=1, val_split="train",
                              test_split="train")  # fmt: skip
    dm = PointCloudDataModule(frames, max_points=4000, augment_points=False)
    module = Teacher3DModule(num_classes=20, class_names=dm.class_names, voxel_size=0.1,
                             optimizer=lambda p: torch.optim.Adam(p, lr=0.01), **SMALL)  # fmt: skip
    trainer = L.Trainer(max_epochs=15, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, check_val_every_n_epoch=1000)  # fmt: skip
    trainer.fit(module, datamodule=dm)
    trainer.test(module, datamodule=dm, verbose=False)
    result = module.last_results["test"]
    label = next(iter(dm.test_dataloader()))["label"]
    majority = float(torch.bincount(label[label != 255]).max() / (label != 255).sum())
    assert float(result["pixel_acc"]) > majority + 0.05  # better than always answering the commonest class
    assert float(result["mIoU"]) > 1 / 20


@needs_minkowski
def test_load_external_maps_keys_and_reports_the_rest(tmp_path):
    source = Teacher3DModule(num_classes=7, **SMALL).model.net
    state = {f"module.{k}": v for k, v in source.state_dict().items() if "num_batches_tracked" not in k}
    state["module.extra.weight"] = torch.zeros(1)
    del state["module.bn0.bn.weight"]
    torch.save({"state_dict": state}, tmp_path / "zoo.pth")
    target = Teacher3DModule(num_classes=5, **SMALL).model  # another class count: `final` cannot load
    report = target.load_external(tmp_path / "zoo.pth")
    assert report["unexpected"] == ["module.extra.weight"]
    assert set(report["mismatched"]) == {"final.kernel", "final.bias"}
    assert report["missing"] == ["bn0.bn.weight"]
    torch.testing.assert_close(target.net.block1[0].conv1.kernel, source.block1[0].conv1.kernel)
    with pytest.raises(DataFileError):
        target.load_external(tmp_path / "absent.pth")


@needs_minkowski
def test_teacher_checkpoint_round_trip(tmp_path):
    import lightning as L

    module = Teacher3DModule(num_classes=4, class_names=list("abcd"), voxel_size=0.08, **SMALL)
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, max_epochs=0)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(tmp_path / "t.ckpt")
    loaded = Teacher3DModule.load_from_checkpoint(tmp_path / "t.ckpt")
    assert dict(loaded.hparams) == dict(module.hparams) and "arch" not in loaded.hparams
    coords = torch.cat([torch.zeros(50, 1), torch.from_numpy(np.random.default_rng(0).random((50, 3)))], 1).float()
    module.eval(), loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(module(coords, torch.zeros(50, 3))[0], loaded(coords, torch.zeros(50, 3))[0])


@needs_minkowski
def test_extraction_with_a_teacher_checkpoint(synthrooms, tmp_path):
    import lightning as L

    from indoor_parsing.data.features import FeatureCache
    from indoor_parsing.distill.extract import extract_features, file_sha256, teacher_point_features

    module = Teacher3DModule(num_classes=20, voxel_size=0.1, **SMALL)
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, max_epochs=0)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(tmp_path / "teacher.ckpt")
    teacher = {"checkpoint": "teacher.ckpt", "sha256": file_sha256(tmp_path / "teacher.ckpt")}
    fn = teacher_point_features(tmp_path / "teacher.ckpt")
    extract_features(synthrooms, tmp_path / "cache", fn, teacher, "synthrooms", stride=4, progress=False)
    cache = FeatureCache(tmp_path / "cache")
    assert cache.channels == 16 and cache.stride == 4 and cache.manifest["teacher"]["sha256"] == teacher["sha256"]
    feats, labels, names = cache.bank()
    assert feats.shape[1] == 16 and len(names) == 20 and labels.max() < 20
