"""Wrapper DataModules (data/wrapper.py DataModuleWrapper): the wrapped DataModule's frames, batches and settings."""

import pickle

import pytest
import torch

from indoor_parsing.data.base import IndoorDataModule
from indoor_parsing.data.features import FeatureCacheDataModule
from indoor_parsing.data.points import PointCloudDataModule
from indoor_parsing.data.synthrooms.generate import generate_synthrooms


@pytest.fixture(scope="module")
def synthrooms(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthrooms_wrappers")
    return generate_synthrooms(root, num_scenes=3, frames_per_sequence=2, height=24, width=32, split=[1, 1, 1],
                               point_density=300, progress=False)  # fmt: skip


def _frames(root, **kwargs) -> IndoorDataModule:
    return IndoorDataModule(root=str(root), class_set="synthrooms", batch_size=2, augment=True,
                            scale_range=(0.8, 1.25), image_size=(24, 32), **kwargs)  # fmt: skip


def test_wrapper_batches_are_the_wrapped_datamodules(synthrooms):
    plain, wrapped = _frames(synthrooms), FeatureCacheDataModule(_frames(synthrooms))  # no cache: plain batches
    wrapped.setup("fit")
    for a, b in zip(plain.train_dataloader(), wrapped.train_dataloader(), strict=True):  # same order, same seeds
        assert a["meta"]["key"] == b["meta"]["key"]
        torch.testing.assert_close(a["image"], b["image"], rtol=0, atol=0)
    assert [f.key for f in wrapped.frames("val")] == [f.key for f in plain.frames("val")]
    assert wrapped.class_pixel_counts()[0].tolist() == plain.class_pixel_counts()[0].tolist()


def test_wrapper_reads_and_sets_the_wrapped_settings(synthrooms):
    data = _frames(synthrooms)
    points = PointCloudDataModule(data, max_points=100)
    assert (points.num_classes, points.class_names, points.root) == (data.num_classes, data.class_names, data.root)
    assert points.batch_size == 2 and points.splits == data.splits
    points.with_pose = True  # as S4NetDataModule sets its target's
    assert data.with_pose and "with_pose" not in vars(points)
    assert points.max_points == 100 and not hasattr(data, "max_points")  # the wrapper's own arguments stay its own
    with pytest.raises(AttributeError, match="_frames"):
        _ = points._frames  # private state is each object's own


def test_wrapper_survives_pickling(synthrooms):
    wrapped = FeatureCacheDataModule(_frames(synthrooms), feature_cache=None, paired=False)
    copy = pickle.loads(pickle.dumps(wrapped))  # spawned DDP workers receive the DataModule pickled
    assert copy.paired is False and copy.root == wrapped.root and copy.data.batch_size == 2
