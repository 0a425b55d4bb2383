import numpy as np
import pytest
import torch

from indoor_parsing.data.base import IndoorDataModule
from indoor_parsing.data.sample import validate_batch
from indoor_parsing.data.taxonomy import class_set
from indoor_parsing.io import DataFileError, load_label
from tests.helpers import make_layout


@pytest.fixture
def layout(tmp_path):
    return make_layout(tmp_path / "toy")


def test_batches_follow_the_contract(layout):
    dm = IndoorDataModule(str(layout), "synthrooms", batch_size=2, image_size=(16, 24), augment=True,
                          scale_range=(0.8, 1.2), with_pose=True)  # fmt: skip
    batch = next(iter(dm.train_dataloader()))
    validate_batch(batch, ("image", "label", "depth", "depth_valid", "intrinsics", "pose"))
    assert batch["image"].shape == (2, 3, 16, 24)
    assert batch["meta"]["scene"][0] in "ab" and len(batch["meta"]["key"]) == 2
    assert dm.num_classes == 20 and dm.class_names[0] == "wall"


def test_labels_are_mapped_through_the_class_set(layout):
    dm = IndoorDataModule(str(layout), "synthrooms", batch_size=1)
    sample = dm.dataset("validate")[0]
    frame = dm.frames("val")[0]
    stored = load_label(layout / frame.label)
    expected = class_set("synthrooms").map(stored)
    np.testing.assert_array_equal(sample["label"].numpy(), expected)
    assert set(np.unique(expected)) <= set(range(20)) | {255}


def test_splits_and_val_from_train(layout):
    dm = IndoorDataModule(str(layout), "nyu40")
    assert {f.scene for f in dm.frames("train")} == {"a", "b"}
    assert {f.scene for f in dm.frames("train,val")} == {"a", "b", "c"}
    held = IndoorDataModule(str(layout), "nyu40", val_from_train=0.5, split_seed=3)
    train, val = {f.scene for f in held.frames("train")}, {f.scene for f in held.frames("val")}
    assert len(train) == 1 and train.isdisjoint(val) and "c" in val and len(val) == 2
    again = IndoorDataModule(str(layout), "nyu40", val_from_train=0.5, split_seed=3)
    assert {f.scene for f in again.frames("train")} == train


def test_partial_depth_supervision_is_deterministic(layout):
    def kept(seed):
        dm = IndoorDataModule(str(layout), "nyu40", depth_fraction=0.5, split_seed=seed)
        ds = dm.dataset("fit")
        return [bool(ds[i]["depth_valid"].any()) for i in range(len(ds))]

    a = kept(0)
    assert a == kept(0) and 0 < sum(a) < len(a)
    assert a != kept(1) or a != kept(2)


def test_sampler_fixes_order_and_augmentation(layout):
    def first_batch():
        torch.manual_seed(123)  # global RNG must not matter
        dm = IndoorDataModule(str(layout), "nyu40", batch_size=3, image_size=(16, 24), augment=True,
                              scale_range=(0.7, 1.3), color_jitter=0.3)  # fmt: skip
        return next(iter(dm.train_dataloader()))

    a = first_batch()
    torch.manual_seed(999)
    b = first_batch()
    assert torch.equal(a["image"], b["image"]) and a["meta"]["key"] == b["meta"]["key"]


def test_label_layout_mismatch_errors(layout):
    with pytest.raises(DataFileError, match="label space 'nyu40'"):
        IndoorDataModule(str(layout), "s3dis13").setup()


def test_neighbours_come_from_the_same_sequence(layout):
    dm = IndoorDataModule(str(layout), "nyu40", batch_size=2, num_neighbors=2, neighbor_window=1)
    batch = next(iter(dm.val_dataloader()))
    assert len(batch["neighbors"]) == 2
    validate_batch(batch, ("image", "neighbors"))
    # frame 0's only neighbour within one position is frame 1, whose pose is 0.1 m along x
    assert torch.allclose(batch["neighbors"][0]["pose"][0, 0, 3], torch.tensor(0.1))
    assert set(dm.dataset("validate").neighbors(0)) == {1}


def test_class_pixel_counts_cached(layout):
    dm = IndoorDataModule(str(layout), "synthrooms")
    counts, image_pixels = dm.class_pixel_counts()
    assert counts.sum() > 0 and (image_pixels >= counts).all()
    assert list(layout.glob("class_stats_synthrooms_*.json"))
    counts2, _ = IndoorDataModule(str(layout), "synthrooms").class_pixel_counts()
    np.testing.assert_array_equal(counts, counts2)
