"""3D-to-2D Distillation: feature projection and cache, DN, L_p, adversarial alternation, the method harness."""

import numpy as np
import pytest
import torch

from indoor_parsing.data.base import IndoorDataModule
from indoor_parsing.data.features import FeatureCache, FeatureCacheDataModule, resample_grid
from indoor_parsing.data.layout import read_layout
from indoor_parsing.data.synthrooms.generate import generate_synthrooms
from indoor_parsing.data.taxonomy import class_set
from indoor_parsing.distill.audit import label_mismatch
from indoor_parsing.distill.extract import build_bank_cache, build_test_cache, extract_features
from indoor_parsing.io import DataFileError, load_label
from indoor_parsing.methods.distill3d import Distill3DModule
from indoor_parsing.models.discriminators import CategoryDiscriminators
from tests.helpers import make_batch
from tests.method_harness import check_checkpoint_round_trip, check_forward_backward, check_odd_sizes

TINY = {"encoder_name": "resnet18", "feat_channels": 8, "decoder_channels": 32}


@pytest.fixture(scope="module")
def synthrooms(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthrooms")
    return generate_synthrooms(root, num_scenes=3, frames_per_sequence=2, height=48, width=64, split=[1, 1, 1],
                               point_density=400, progress=False)  # fmt: skip


def one_hot_labels(cloud: dict) -> np.ndarray:
    """A "teacher" whose feature is the one-hot stored label: projections can be checked against frame labels."""
    return np.eye(41, dtype=np.float32)[cloud["label"]]


@pytest.fixture(scope="module")
def label_cache(synthrooms, tmp_path_factory):
    out = tmp_path_factory.mktemp("label_cache")
    extract_features(synthrooms, out, one_hot_labels, {"sha256": "one-hot"}, "synthrooms", stride=1,
                     bank_per_class=0, progress=False)  # fmt: skip
    return out


def test_zbuffer_projection_matches_synthrooms_labels(synthrooms, label_cache):
    cache = FeatureCache(label_cache)
    _, frames = read_layout(synthrooms)
    agree = total = 0
    for frame in (f for f in frames if f.split == "train"):
        feat, mask = cache.load(frame.key)  # (41, H, W), (H, W)
        label = load_label(synthrooms / frame.label)
        agree += int((feat.argmax(0) == label)[mask].sum())
        total += int(mask.sum())
    assert total > 0.3 * 48 * 64 * 2  # the nearest visible point covers a good part of each frame
    assert agree / total > 0.97
    assert 0 < cache.manifest["pixel_coverage"] <= 1 and cache.manifest["frames"] == 2


def test_stride8_cells_hold_the_point_visible_at_their_sample_pixel(tmp_path_factory):
    """Sec. 3.1 sampling: a cell's teacher point is the one seen at its sample pixel, so its class is that pixel's."""
    root = generate_synthrooms(tmp_path_factory.mktemp("synthrooms_s8"), num_scenes=2, frames_per_sequence=3,
                               height=96, width=128, split=[2, 0, 0], point_density=800, progress=False)  # fmt: skip
    out = root.parent / "cache8"
    extract_features(root, out, one_hot_labels, {"sha256": "one-hot"}, "synthrooms", stride=8, bank_per_class=0,
                     progress=False)  # fmt: skip
    cache, lut = FeatureCache(out), class_set("synthrooms").lut.astype(np.int64)
    differ = compared = 0
    for frame in read_layout(root)[1]:
        feat, mask = cache.load(frame.key)  # (41, 12, 16), (12, 16)
        point = lut[feat.argmax(0)]
        pixel = lut[load_label(root / frame.label)][4::8, 4::8]  # the label at each cell's sample pixel
        compared_here = mask & (point != 255) & (pixel != 255)
        differ, compared = differ + int((point != pixel)[compared_here].sum()), compared + int(compared_here.sum())
    audit = label_mismatch(root, "synthrooms", stride=8)  # what `indoor-parsing feature-audit` prints
    assert audit["sample_pixel"]["compared"] == compared > 300
    assert audit["sample_pixel"]["mismatch"] == differ / compared < 0.03  # 0.8 % here; nearest-in-cell: 9 %
    assert audit["cell_nearest"]["mismatch"] > 0.05


def test_extraction_is_resumable_and_refuses_other_settings(synthrooms, label_cache):
    progress = sorted((label_cache / "progress").rglob("*.npz"))
    stamp = [p.stat().st_mtime_ns for p in progress]

    def never_called(cloud: dict) -> np.ndarray:
        raise AssertionError("a finished scene ran the teacher again")

    extract_features(synthrooms, label_cache, never_called, {"sha256": "one-hot"}, "synthrooms", stride=1,
                     bank_per_class=0, progress=False)  # fmt: skip
    assert [p.stat().st_mtime_ns for p in progress] == stamp
    with pytest.raises(DataFileError, match="stride"):
        extract_features(synthrooms, label_cache, one_hot_labels, {"sha256": "one-hot"}, "synthrooms", stride=2,
                         progress=False)  # fmt: skip


def test_resample_grid_follows_flip_and_crop():
    feat = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    mask = np.ones((3, 4), bool)
    K = np.array([[20.0, 0, 15.5], [0, 20.0, 11.5], [0, 0, 1]])
    out, m = resample_grid(feat, mask, K, K, (24, 32), 8)
    np.testing.assert_array_equal(out, feat)  # identity
    K_flip = np.array([[-1, 0, 31], [0, 1, 0], [0, 0, 1]]) @ K
    out, m = resample_grid(feat, mask, K, K_flip, (24, 32), 8)
    np.testing.assert_array_equal(out, feat[:, :, ::-1])
    K_crop = np.array([[1, 0, -8], [0, 1, -8], [0, 0, 1]]) @ K  # crop at (8, 8), size 16 x 16
    out, m = resample_grid(feat, mask, K, K_crop, (16, 16), 8)
    np.testing.assert_array_equal(out, feat[:, 1:3, 1:3])


def test_augmented_batches_keep_features_aligned(synthrooms, label_cache):
    frames = IndoorDataModule(root=str(synthrooms), class_set="synthrooms", batch_size=2, augment=True,
                              scale_range=(0.8, 1.5), image_size=(40, 56))  # fmt: skip
    dm = FeatureCacheDataModule(frames, feature_cache=str(label_cache))
    dm.setup("fit")
    to_train = torch.from_numpy(class_set("synthrooms").lut.astype(np.int64))
    agree = total = 0
    for _ in range(3):  # three epochs of random scale / crop / flip
        for batch in dm.train_dataloader():
            assert batch["feat3d"].shape == (2, 41, 40, 56) and batch["feat3d_mask"].dtype == torch.bool
            pred = to_train[batch["feat3d"].argmax(1)]  # (B, H, W) stored id -> train id
            uncovered = ~batch["feat3d_mask"].expand_as(batch["feat3d"])
            assert uncovered.any() and batch["feat3d"][uncovered].abs().max() == 0  # coverage travels with the batch
            covered = batch["feat3d_mask"][:, 0] & (batch["label"] != 255)
            agree += int((pred == batch["label"])[covered].sum())
            total += int(covered.sum())
    assert total > 1000 and agree / total > 0.9


def test_dn_statistics_come_from_the_cache(synthrooms, tmp_path):
    cache = build_test_cache(synthrooms, tmp_path / "cache", channels=8)
    dm = FeatureCacheDataModule(
        IndoorDataModule(root=str(synthrooms), class_set="synthrooms"), feature_cache=str(cache)
    )
    module = Distill3DModule(num_classes=20, **TINY)
    module.configure_from_datamodule(dm)
    stats = FeatureCache(cache).manifest
    torch.testing.assert_close(module.model.norm1.target_mean, torch.tensor(stats["mean"]))
    torch.testing.assert_close(module.model.norm1.target_std, torch.tensor(stats["std"]))
    assert float(module.model.norm1.target_std.min()) > 0
    check_checkpoint_round_trip(module, Distill3DModule, tmp_path)  # the statistics travel as buffers
    loaded = Distill3DModule.load_from_checkpoint(tmp_path / "m.ckpt")
    torch.testing.assert_close(loaded.model.norm1.target_mean, module.model.norm1.target_mean)
    with pytest.raises(DataFileError, match="channels"):
        Distill3DModule(num_classes=20, **{**TINY, "feat_channels": 4}).configure_from_datamodule(dm)


def test_lp_has_zero_gradient_on_uncovered_cells():
    module = Distill3DModule(num_classes=5, **TINY)
    sim = torch.randn(2, 8, 5, 7, requires_grad=True)
    mask = torch.rand(2, 1, 5, 7) > 0.5
    batch = {"feat3d": torch.randn(2, 8, 5, 7), "feat3d_mask": mask}
    loss = module.distill_loss(sim, batch)
    expected = ((sim - batch["feat3d"]) ** 2).sum(1, keepdim=True)[mask].mean()  # Σ_c over covered cells / count
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert (sim.grad * ~mask).abs().sum() == 0
    assert (sim.grad * mask).abs().sum() > 0


@pytest.mark.parametrize("mode", ["distill", "baseline", "multitask", "cascade"])
def test_modes_forward_backward_and_odd_sizes(mode):
    module = Distill3DModule(num_classes=5, mode=mode, **TINY)
    batch = make_batch(2, 32, 48, K=5)
    batch["feat3d"], batch["feat3d_mask"] = torch.randn(2, 8, 4, 6), torch.rand(2, 1, 4, 6) > 0.3
    terms = check_forward_backward(module, batch)
    # cascade: CE + aux only, its depth network is a frozen earlier stage (test_distill3d_wiring.py)
    expected = {"distill": {"ce", "aux", "distill"}, "baseline": {"ce", "aux"}, "multitask": {"ce", "aux", "depth"},
                "cascade": {"ce", "aux"}}[mode]  # fmt: skip
    assert set(terms) == expected
    check_odd_sizes(module, 5, sizes=((37, 53), (29, 45)))


def test_bn_ablation_and_multiscale_flip_evaluation():
    module = Distill3DModule(num_classes=4, norm="bn", eval_scales=(0.75, 1.0), eval_flip=True, **TINY).eval()
    batch = make_batch(1, 37, 45, K=4)
    with torch.no_grad():
        logits = module.eval_logits(batch)
    assert logits.shape == (1, 4, 37, 45) and torch.isfinite(logits).all()
    torch.testing.assert_close(logits.exp().sum(1), torch.ones(1, 37, 45))  # log of averaged probabilities


def test_per_category_discriminators_route_by_category():
    D = CategoryDiscriminators(3, channels=8)
    x, c = torch.randn(10, 8), torch.tensor([0, 1, 2, 1, 0, 2, 2, 1, 0, 0])
    out = D(x, c)
    for k in range(3):
        torch.testing.assert_close(out[c == k], D.nets[k](x[c == k]).squeeze(1))


def _unpaired_module(shared: bool = False) -> Distill3DModule:
    names = ["wall", "floor", "chair", "table"]
    module = Distill3DModule(num_classes=4, class_names=names, paired=False, shared_discriminator=shared,
                             adv_samples=64, **TINY)  # fmt: skip
    bank_names = ["floor", "wall", "sofa", "chair"]  # the 3D set: "table" is 2D-only, "sofa" 3D-only
    labels = torch.arange(4).repeat_interleave(5)
    module.set_bank(torch.randn(20, 8) + labels[:, None].float(), labels, bank_names)
    return module


def test_bank_keeps_shared_categories():
    module = _unpaired_module()
    assert module.bank_count.tolist() == [5, 5, 5, 0]  # wall, floor, chair from the bank; no table features
    real = module.sample_real(torch.tensor([0, 1, 2, 2]))
    assert real.shape == (4, 8)


@pytest.mark.parametrize("shared", [False, True])
def test_adversarial_alternation_updates_both_sides(shared):
    torch.manual_seed(0)
    module = _unpaired_module(shared)
    assert not module.automatic_optimization
    module.train()
    opt_g = torch.optim.SGD(module.param_groups(), lr=0.1)
    opt_d = torch.optim.SGD(module.discriminators.parameters(), lr=0.1)
    batch = make_batch(2, 32, 48, K=4)

    def snapshot():
        g = [p.detach().clone() for p in module.model.parameters()]
        d = [p.detach().clone() for p in module.discriminators.parameters()]
        return g, d

    def changed(before, params):
        return any(not torch.equal(b, p) for b, p in zip(before, params, strict=True))

    g0, _ = snapshot()
    terms, fake, category = module.generator_step(batch, opt_g)
    assert "adv" in terms and fake.shape[0] > 0 and not fake.requires_grad
    assert changed(g0, module.model.parameters())
    _, d1 = snapshot()
    module.discriminator_step(fake, category, opt_d)
    assert changed(d1, module.discriminators.parameters())
    # What each step may and may not touch (D frozen in Eq. 4, gradients of each term): test_distill3d_wiring.py


class _BankData:
    """The two things unpaired training asks of its DataModule, plus batches."""

    def __init__(self, module: Distill3DModule, batches: int):
        self.bank = (module.bank.clone(), torch.arange(4).repeat_interleave(5)[:15], ["wall", "floor", "chair"])
        self.batches = [make_batch(2, 32, 48, K=4) for _ in range(batches)]

    def feature_stats(self):
        return {"mean": torch.zeros(8), "std": torch.ones(8), "channels": 8, "stride": 8}

    def feature_bank(self):
        return self.bank


def test_unpaired_step_budget_counts_batches_not_optimiser_steps():
    import lightning as L

    torch.manual_seed(0)
    module = _unpaired_module()
    data = _BankData(module, batches=5)
    module.configure_from_datamodule(data)
    seen = []
    step = module.training_step
    module.training_step = lambda batch, batch_idx: (seen.append(batch_idx), step(batch, batch_idx))[1]
    trainer = L.Trainer(max_steps=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0)  # fmt: skip
    module.setup = lambda stage: None  # the bank was set above; there is no DataModule to read it from
    trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader(data.batches, batch_size=None))
    assert seen == [0, 1, 2] and trainer.global_step == 3  # both optimisers stepped per batch, 3 batches counted


def test_bank_only_cache_feeds_unpaired_training(tmp_path):
    cache = FeatureCache(build_bank_cache(tmp_path / "bank", "synthrooms", channels=8, per_class=4))
    module = Distill3DModule(num_classes=3, class_names=["wall", "floor", "nothing"], paired=False, **TINY)
    module.set_bank(*cache.bank())
    assert module.bank_count.tolist() == [4, 4, 0] and module.bank.shape == (8, 8)
    cache.manifest["bank"] = None  # a cache extracted with --bank-per-class 0
    with pytest.raises(DataFileError, match="no feature bank"):
        cache.bank()


def test_cache_of_the_old_nearest_in_cell_sampling_is_refused(tmp_path):
    from indoor_parsing.io import read_json, write_json

    root = build_bank_cache(tmp_path / "bank", "synthrooms", channels=8, per_class=2)
    write_json(root / "manifest.json", {**read_json(root / "manifest.json"), "version": 1})
    with pytest.raises(DataFileError, match="re-run `indoor-parsing extract-features`"):
        FeatureCache(root)


def test_tools_read_experiment_configs_with_their_include_pieces():
    """depth-probe / extract-features / feature-audit build the DataModule of a config that stacks pieces."""
    from pathlib import Path

    from indoor_parsing.distill.depth_probe import load_datamodule

    config = Path(__file__).resolve().parents[1] / "configs" / "experiments" / "distill3d_resnet18_synthrooms.yaml"
    dm = load_datamodule(config)  # its data block lives in configs/data/synthrooms_distill3d.yaml
    assert isinstance(dm, FeatureCacheDataModule) and dm.feature_cache == "runs/teacher3d_synthrooms/features"
