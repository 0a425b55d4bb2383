"""3D-to-2D Distillation wired as the paper defines it: DN (Table 1), every loss term, frozen parts, the baselines.

Each test fails when one piece is cut: a DN bypassed or fed batch statistics, a loss term detached or dropped, the
teacher features or the cascade's depth network receiving gradient, class-matched sampling in the shared-D baseline.
"""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from indoor_parsing.io import DataFileError
from indoor_parsing.methods.base import SegmentationModule
from indoor_parsing.methods.cascade_depth import CascadeDepthModule
from indoor_parsing.methods.distill3d import Distill3DModule
from indoor_parsing.models.discriminators import CategoryDiscriminators, discriminator_loss
from indoor_parsing.models.pspnet import DistributionNorm, PSPNetStudent
from tests.helpers import make_batch

TINY = {"encoder_name": "resnet18", "feat_channels": 8, "decoder_channels": 32}


def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    flat = x.transpose(0, 1).flatten(1)  # (C, B*H*W)
    return flat.mean(1), flat.std(1, unbiased=False)


# ---- DN (Table 1, Sec. 3.2) ---------------------------------------------------------------------------------------
def test_dn_is_table1_with_channelwise_batch_statistics_and_learnable_deltas():
    dn = DistributionNorm(3)
    torch.testing.assert_close(dn.delta_std.detach(), torch.ones(3))  # Δσ init 1
    torch.testing.assert_close(dn.delta_mean.detach(), torch.zeros(3))  # Δμ init 0
    mu_t, sigma_t = torch.tensor([1.0, -2.0, 5.0]), torch.tensor([0.5, 2.0, 3.0])
    dn.set_target(mu_t, sigma_t)
    scale, shift = torch.tensor([7.0, 0.1, 2.0]).view(1, 3, 1, 1), torch.tensor([3.0, -9.0, 0.0]).view(1, 3, 1, 1)
    x = torch.randn(16, 3, 4, 4) * scale + shift  # channels of very different statistics
    with torch.no_grad():
        dn.delta_std.copy_(torch.tensor([2.0, 1.0, 0.5]))
        dn.delta_mean.copy_(torch.tensor([0.5, 0.0, -1.0]))
    y = dn(x)  # x̂ = Δσ ⊙ (σ̄ ⊙ (x − μ) / σ + μ̄) + Δμ
    mean, std = channel_stats(y)
    torch.testing.assert_close(mean, torch.tensor([2.5, -2.0, 1.5]), atol=1e-4, rtol=0)
    torch.testing.assert_close(std, torch.tensor([1.0, 2.0, 1.5]), atol=0, rtol=2e-3)  # eps in the variance
    y.sum().backward()
    assert dn.delta_std.grad is not None and dn.delta_mean.grad is not None  # learnable
    dn.eval()  # inference: BN's running statistics instead of the batch's
    rm, rv = dn.norm.running_mean, dn.norm.running_var
    expected = ((x - rm.view(1, 3, 1, 1)) / (rv.view(1, 3, 1, 1) + 1e-5).sqrt() * sigma_t.view(1, 3, 1, 1)
                + mu_t.view(1, 3, 1, 1)) * dn.delta_std.view(1, 3, 1, 1) + dn.delta_mean.view(1, 3, 1, 1)  # fmt: skip
    torch.testing.assert_close(dn(x), expected.detach())


def test_dn2_targets_running_channelwise_f2d_statistics_not_the_batch():
    dn2 = DistributionNorm(4, track_target=True)
    spread = torch.tensor([1.0, 4.0, 0.5, 2.0]).view(1, 4, 1, 1)
    ref1 = torch.randn(8, 4, 5, 5) * spread + torch.tensor([0.0, 3.0, -2.0, 10.0]).view(1, 4, 1, 1)
    ref2 = torch.randn(8, 4, 5, 5) * 0.1 - 20.0  # a batch far from the running estimate
    mean1, std1 = ref1.transpose(0, 1).flatten(1).mean(1), ref1.transpose(0, 1).flatten(1).std(1)
    y1 = dn2(torch.randn(8, 4, 5, 5), reference=ref1)  # the first batch initialises the estimate
    torch.testing.assert_close(channel_stats(y1)[0], mean1, atol=1e-4, rtol=0)  # channel-wise, not one scalar
    torch.testing.assert_close(channel_stats(y1)[1], std1, atol=1e-3, rtol=0)
    x2 = torch.randn(8, 4, 5, 5, requires_grad=True)
    y2 = dn2(x2, reference=ref2)
    y2.square().sum().backward()  # the running update after the forward leaves the graph intact
    assert x2.grad.abs().sum() > 0
    torch.testing.assert_close(channel_stats(y2)[0], mean1, atol=1e-4, rtol=0)  # the running estimate, not ref2's
    torch.testing.assert_close(dn2.target_mean, 0.9 * mean1 + 0.1 * ref2.mean((0, 2, 3)), atol=1e-4, rtol=0)
    dn2.eval()
    y3 = dn2(torch.randn(8, 4, 5, 5))  # inference needs no reference
    assert y3.shape == (8, 4, 5, 5)


def _student(norm: str = "dn") -> PSPNetStudent:
    torch.manual_seed(0)
    return PSPNetStudent(5, "resnet18", None, "distill", feat_channels=8, norm=norm, decoder_channels=32).train()


@pytest.mark.parametrize("norm", ["dn", "bn"])
def test_student_forward_runs_dn1_before_conv2_and_dn2_before_the_classifier(norm):
    model = _student(norm)
    mu3d, sigma3d = torch.linspace(-5, 5, 8), torch.linspace(0.5, 3, 8)
    model.set_feature_stats(mu3d, sigma3d)
    if norm == "dn":
        model.norm2.set_target(torch.linspace(10, 20, 32), torch.full((32,), 0.25))
    seen = {}
    model.conv2.register_forward_pre_hook(lambda m, args: seen.__setitem__("dn1", args[0]))
    model.classifier.register_forward_pre_hook(lambda m, args: seen.__setitem__("head", args[0]))
    out = model(torch.randn(4, 3, 32, 48))
    assert out["sim3d"].shape == (4, 8, 4, 6)
    dn1_mean, dn1_std = channel_stats(seen["dn1"])
    dn2_mean, dn2_std = channel_stats(seen["head"][:, 32:])  # concat(f_2D, DN2(Conv3(f_3D_sim)))
    torch.testing.assert_close(seen["head"][:, :32], out["f2d"])
    if norm == "dn":  # Sec. 3.2: f_3D_sim is produced from features at the 3D statistics; DN2 moves back to f_2D's
        torch.testing.assert_close(dn1_mean, mu3d, atol=1e-3, rtol=0)
        torch.testing.assert_close(dn1_std, sigma3d, atol=1e-2, rtol=0)
        torch.testing.assert_close(dn2_mean, torch.linspace(10, 20, 32), atol=1e-3, rtol=0)
        torch.testing.assert_close(dn2_std, torch.full((32,), 0.25), atol=1e-2, rtol=0)
    else:  # Table 7's ablation: BN (γ = 1, β = 0 at init) ignores the 3D statistics
        torch.testing.assert_close(dn1_mean, torch.zeros(8), atol=1e-3, rtol=0)
        torch.testing.assert_close(dn2_mean, torch.zeros(32), atol=1e-3, rtol=0)


# ---- paired losses ----------------------------------------------------------------------------------------------
def _paired_batch():
    batch = make_batch(2, 32, 48, K=5)
    g = torch.Generator().manual_seed(1)
    batch["feat3d"] = torch.randn(2, 8, 4, 6, generator=g).requires_grad_(True)  # a frozen part: must stay grad-free
    batch["feat3d_mask"] = torch.rand(2, 1, 4, 6, generator=g) > 0.4
    return batch


def test_paired_step_optimises_ce_aux_and_lp_through_every_branch():
    torch.manual_seed(0)
    module = Distill3DModule(num_classes=5, **TINY).train()
    batch = _paired_batch()
    outs = []
    module.model.register_forward_hook(lambda m, args, out: outs.append(out))
    loss = module.training_step(batch, 0)
    (out,) = outs
    ce = F.cross_entropy(out["logits"], batch["label"], ignore_index=255)  # the model predicts at the input size
    aux = F.cross_entropy(out["aux"], batch["label"], ignore_index=255)
    mask = batch["feat3d_mask"][:, 0]  # (B, h, w)
    lp = ((out["sim3d"] - batch["feat3d"].detach()) ** 2).sum(1)[mask].mean()  # L_p over covered cells
    reference = ce + 0.4 * aux + 0.03 * lp
    torch.testing.assert_close(loss, reference)
    m = module.model
    params = [m.conv1[0].weight, m.conv2[2].weight, m.conv3[0].weight, m.classifier[1].weight, m.aux_head[0][0].weight,
              m.encoder.parameters().__next__()]  # fmt: skip
    got = torch.autograd.grad(loss, params, retain_graph=True)
    want = torch.autograd.grad(reference, params, retain_graph=True)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w)
        assert g.abs().sum() > 0
    loss.backward()
    assert batch["feat3d"].grad is None  # the teacher's features are targets, not parameters


# ---- unpaired: Eq. 3 / Eq. 4 ------------------------------------------------------------------------------------
def _unpaired(shared: bool = False) -> Distill3DModule:
    torch.manual_seed(0)
    names = ["wall", "floor", "chair", "table"]
    module = Distill3DModule(num_classes=4, class_names=names, paired=False, shared_discriminator=shared,
                             adv_samples=64, **TINY).train()  # fmt: skip
    labels = torch.arange(4).repeat_interleave(5)
    module.set_bank(torch.randn(20, 8) + 3 * labels[:, None].float(), labels, ["floor", "wall", "sofa", "chair"])
    return module


def test_discriminator_loss_is_eq3_and_generator_loss_eq4():
    from indoor_parsing.models.discriminators import generator_loss

    real, fake = torch.tensor([0.0, 2.0]), torch.tensor([0.0, -1.0])
    expected = -(torch.log(torch.sigmoid(real))).mean() - torch.log(1 - torch.sigmoid(fake)).mean()
    torch.testing.assert_close(discriminator_loss(real, fake), expected)
    torch.testing.assert_close(generator_loss(fake), -torch.log(torch.sigmoid(fake)).mean())


def test_generator_step_sends_eq4_into_the_2d_network_with_discriminators_frozen():
    module = _unpaired()
    module._backward = lambda loss: loss.backward(retain_graph=True)
    opt_g = torch.optim.SGD(module.param_groups(), lr=0.1)
    opt_g.step = lambda: None  # keep the graph's weights unmodified for the gradient checks below
    terms, fake, category = module.generator_step(make_batch(2, 32, 48, K=4), opt_g)
    assert set(terms) == {"ce", "aux", "adv"} and fake.shape[0] > 0 and not fake.requires_grad
    assert all(p.grad is None for p in module.discriminators.parameters())  # Eq. 4 step: D frozen ...
    assert all(p.requires_grad for p in module.discriminators.parameters())  # ... and trainable again after it
    (g,) = torch.autograd.grad(terms["adv"], [module.model.conv2[2].weight], retain_graph=True)
    assert g.abs().sum() > 0  # the adversarial term reaches the simulating branch
    assert module.model.conv2[2].weight.grad.abs().sum() > 0


def test_discriminator_step_is_eq3_on_bank_features_and_simulated_features():
    module = _unpaired()
    opt_g = torch.optim.SGD(module.param_groups(), lr=0.1)
    _, fake, category = module.generator_step(make_batch(2, 32, 48, K=4), opt_g)
    D = module.discriminators
    opt_d = torch.optim.SGD(D.parameters(), lr=0.0)
    torch.manual_seed(5)
    module.discriminator_step(fake, category, opt_d)
    got = [p.grad.clone() for p in D.parameters() if p.grad is not None]
    torch.manual_seed(5)
    real = module.sample_real(category)
    want = torch.autograd.grad(discriminator_loss(D(real, category), D(fake, category)),
                               [p for p in D.parameters() if p.grad is not None])  # fmt: skip
    assert len(got) > 0
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w)


def test_shared_discriminator_samples_without_matching_categories():
    shared, per_class = _unpaired(shared=True), _unpaired()
    sim = torch.randn(2, 8, 4, 6)
    unlabelled = torch.full((2, 32, 48), 255)
    fake, _ = shared.sample_fake(sim, unlabelled)
    assert fake.shape == (48, 8)  # every cell, labelled or not
    assert per_class.sample_fake(sim, unlabelled)[0].shape[0] == 0  # per category: only cells of bank classes
    torch.manual_seed(0)
    real = shared.sample_real(torch.zeros(400, dtype=torch.long))  # all "wall" cells ...
    row_class = torch.repeat_interleave(torch.arange(4), shared.bank_count)  # bank rows are grouped by class
    assert set(row_class[torch.cdist(real, shared.bank).argmin(1)].tolist()) == {0, 1, 2}  # ... real of any class
    torch.manual_seed(0)
    matched = per_class.sample_real(torch.zeros(400, dtype=torch.long))  # per category: wall features only
    assert set(row_class[torch.cdist(matched, per_class.bank).argmin(1)].tolist()) == {0}
    D, x = CategoryDiscriminators(3, 8, shared=True), torch.randn(6, 8)
    torch.testing.assert_close(D(x, torch.tensor([0, 1, 2, 0, 1, 2])), D(x, torch.zeros(6, dtype=torch.long)))


# ---- Cascade: a depth stage trained first, then frozen -------------------------------------------------------------
def _depth_stage_checkpoint(tmp_path) -> tuple[CascadeDepthModule, str]:
    import lightning as L

    torch.manual_seed(0)
    stage1 = CascadeDepthModule(encoder_name="resnet18")
    terms = stage1.losses(make_batch(2, 32, 48))
    assert set(terms) == {"depth"}
    terms["depth"].backward()
    assert all(p.grad is not None for p in stage1.model.head.parameters())
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, max_epochs=0)
    trainer.strategy.connect(stage1)
    trainer.save_checkpoint(tmp_path / "depth.ckpt")
    return stage1.eval(), str(tmp_path / "depth.ckpt")


def test_cascade_reads_the_frozen_depth_stage(tmp_path):
    stage1, path = _depth_stage_checkpoint(tmp_path)
    module = Distill3DModule(num_classes=5, mode="cascade", depth_ckpt=path, **TINY)
    module.trainer = SimpleNamespace(datamodule=None)  # fit setup loads the depth stage named by depth_ckpt
    module.setup("fit")
    module.train()
    batch = make_batch(2, 32, 48, K=5)
    net = module.model.depth_net
    running = net.head[0][1].running_mean.clone()
    out = module.model(batch["image"])
    with torch.no_grad():
        torch.testing.assert_close(out["depth"], stage1(batch["image"]))  # stage 1's prediction feeds stage 2
    terms = module.losses(batch)
    assert set(terms) == {"ce", "aux"}  # the depth network no longer learns
    sum(terms.values()).backward()
    assert all(p.grad is None and not p.requires_grad for p in net.parameters())
    assert torch.equal(net.head[0][1].running_mean, running) and not net.training  # BN statistics frozen too
    assert module.model.encoder.parameters().__next__().grad.abs().sum() > 0
    groups = {id(p) for g in module.param_groups() for p in g["params"]}
    assert not groups & {id(p) for p in net.parameters()}
    with pytest.raises(DataFileError, match="depth_ckpt"):
        module.load_depth_net(None)
    with pytest.raises(DataFileError, match="encoder"):
        Distill3DModule(num_classes=5, mode="cascade", encoder_name="resnet34").load_depth_net(path)


def test_cascade_rejects_a_checkpoint_of_another_method(tmp_path):
    import lightning as L

    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, max_epochs=0)
    trainer.strategy.connect(SegmentationModule(num_classes=5, encoder_name="resnet18"))
    trainer.save_checkpoint(tmp_path / "seg.ckpt")
    with pytest.raises(DataFileError, match="not a CascadeDepthModule checkpoint"):
        Distill3DModule(num_classes=5, mode="cascade", encoder_name="resnet18").load_depth_net(tmp_path / "seg.ckpt")
