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
    # no repeats: the second slot is padding (the frame itself), marked unusable
    assert dm.dataset("validate").neighbors(0) == [1, 0]
    assert batch["neighbors"][0]["usable"].all() and not batch["neighbors"][1]["usable"][0]


def test_class_pixel_counts_cached(layout):
    dm = IndoorDataModule(str(layout), "synthrooms")
    counts, image_pixels = dm.class_pixel_counts()
    assert counts.sum() > 0 and (image_pixels >= counts).all()
    assert list(layout.glob("class_stats_synthrooms_*.json"))
    counts2, _ = IndoorDataModule(str(layout), "synthrooms").class_pixel_counts()
    np.testing.assert_array_equal(counts, counts2)


def test_full_resolution_evaluation_labels(layout):
    dm = IndoorDataModule(str(layout), "synthrooms", batch_size=2, image_size=(12, 16), eval_full_resolution=True)
    batch = next(iter(dm.val_dataloader()))
    validate_batch(batch, ("image", "label", "label_full"))
    assert batch["label"].shape[-2:] == (12, 16) and batch["label_full"].shape[-2:] == (24, 32)
    stored = class_set("synthrooms").map(load_label(layout / dm.frames("val")[0].label))
    np.testing.assert_array_equal(batch["label_full"][0].numpy(), stored)
    assert "label_full" not in next(iter(dm.train_dataloader()))


def test_scores_count_stored_pixels_and_skip_padding():
    from indoor_parsing.data.dataset import collate
    from indoor_parsing.methods.base import SegmentationModule

    module = SegmentationModule(num_classes=3)
    small, big = torch.zeros(4, 6, dtype=torch.int64), torch.ones(6, 8, dtype=torch.int64)
    big[0, 0] = 255
    samples = [{"image": torch.zeros(3, 4, 4), "label": torch.zeros(4, 4, dtype=torch.int64), "label_full": x,
                "meta": {"orig_size": tuple(x.shape)}} for x in (small, big)]  # fmt: skip
    batch = collate(samples)
    assert batch["label_full"].shape == (2, 6, 8) and int(batch["label_full"][0, 5, 7]) == 255
    logits = torch.zeros(2, 3, 4, 4)
    logits[:, 1] = 1.0  # predicts class 1 everywhere
    metric = module.metrics["val"]
    module.score(metric, logits, batch)
    conf = metric.confmat
    assert int(conf.sum()) == 4 * 6 + 6 * 8 - 1  # stored pixels, not padding, not the ignored one
    assert int(conf[0, 1]) == 24 and int(conf[1, 1]) == 47
