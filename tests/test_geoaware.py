"""GeoAwareModule (Jiao et al., CVPR 2019): GAP forms, loss terms, switches, depth output and metric, gap-bench."""

import math

import pytest
import torch
import torch.nn.functional as F

from indoor_parsing.data.base import IndoorDataModule
from indoor_parsing.losses import FocalStyleCE
from indoor_parsing.methods.geoaware import GeoAwareModule
from indoor_parsing.metrics.depth import DepthMetrics
from indoor_parsing.models.gap import GAP, VanConv, gap_direct, gap_linear, gap_softmax
from indoor_parsing.tools import gap_bench
from tests.helpers import make_batch, make_layout
from tests.method_harness import check_checkpoint_round_trip, check_odd_sizes

K = 5
TINY = {"encoder_name": "resnet18", "decoder_channels": (16, 16, 8, 8), "spf_channels": 8, "gap_key_channels": 4}
SWITCHES = [("seg_loss", "ce"), ("hha_input", True), ("depth_branch", False), ("featprop", False),
            ("scale_propagation", False), ("fusion", "vanconv"), ("fusion", "none"), ("gap_placement", "every_scale"),
            ("gap_form", "softmax"), ("gap_positive", "relu"), ("spf", False),
            ("encoder_output_stride", 16)]  # fmt: skip


def module(**kw) -> GeoAwareModule:
    torch.manual_seed(0)
    if kw.get("depth_branch") is False:
        kw.setdefault("featprop", False)
        kw.setdefault("fusion", "none")
    return GeoAwareModule(num_classes=K, **{**TINY, **kw})


def test_gap_direct_equals_linear_float64():
    g = torch.Generator().manual_seed(0)
    eta = F.softplus(torch.randn(2, 6, 70, generator=g, dtype=torch.float64))
    phi = F.softplus(torch.randn(2, 6, 70, generator=g, dtype=torch.float64))
    value = torch.randn(2, 5, 70, generator=g, dtype=torch.float64)
    torch.testing.assert_close(gap_linear(eta, phi, value), gap_direct(eta, phi, value), atol=1e-10, rtol=0)
    # Same through the module: identical weights, only the form differs.
    lin, direct = GAP(5, 7, 4, form="linear").double().eval(), GAP(5, 7, 4, form="direct").double().eval()
    direct.load_state_dict(lin.state_dict())
    p, d = torch.randn(2, 5, 7, 9, dtype=torch.float64), torch.randn(2, 7, 7, 9, dtype=torch.float64)
    torch.testing.assert_close(lin(p, d), direct(p, d), atol=1e-10, rtol=0)


def test_gap_softmax_matches_explicit_softmax():
    eta, phi, value = torch.randn(2, 3, 20), torch.randn(2, 3, 20), torch.randn(2, 6, 20)
    weights = torch.softmax(eta.transpose(1, 2) @ phi / math.sqrt(3), dim=2)  # (B, N, N)
    torch.testing.assert_close(gap_softmax(eta, phi, value), (weights @ value.transpose(1, 2)).transpose(1, 2))


def test_gap_keeps_channels_and_relu_rows_fall_back_to_the_residual():
    p, g = torch.randn(2, 6, 5, 7), torch.randn(2, 3, 5, 7)
    for form in ("linear", "direct", "softmax"):
        assert GAP(6, 3, 4, form=form)(p, g).shape == p.shape
    assert VanConv(6, 3)(p, g).shape == p.shape
    gap = GAP(6, 3, 4, positive="relu").eval()
    torch.nn.init.zeros_(gap.eta[0].weight)  # η = ReLU(BN(0)) = 0: empty affinity rows, denominator = eps only
    out = gap(p, g)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, p)
    with pytest.raises(ValueError, match="form"):
        GAP(6, 3, form="quadratic")


def test_loss_composition_by_hand():
    """L = L_s + L_d + Σ_k L_sk (Eq. 8), the distilled output's loss among the L_sk, with non-unit weights."""
    m = module(side_weight=0.5, depth_weight=2.0)
    label = torch.tensor([[[0, 1], [1, 255]]])
    logits = torch.zeros(1, K, 2, 2)  # p = 1/K everywhere
    depth = torch.ones(1, 1, 2, 2, requires_grad=True)
    out = {"logits": logits, "distilled": logits.clone(), "side": [logits.clone() for _ in range(3)], "depth": depth}
    valid = torch.tensor([[[[True, True], [True, False]]]])
    batch = {"label": label, "depth": torch.full((1, 1, 2, 2), 1.5), "depth_valid": valid}
    terms = m.loss_terms(out, batch)
    focal = (1 - 1 / K) ** 2 * math.log(K)  # Eq. 6 per pixel, same at every labelled pixel
    berhu = (0.5**2 + 0.1**2) / (2 * 0.1)  # |x| = 0.5 > δ = 0.2 * 0.5 -> quadratic branch of Eq. 7
    expected = {"seg": focal, "distilled": 0.5 * focal, "side1": 0.5 * focal, "side2": 0.5 * focal,
                "side3": 0.5 * focal, "depth": 2 * berhu}  # fmt: skip
    assert terms.keys() == expected.keys()
    for name, value in expected.items():
        assert terms[name].item() == pytest.approx(value, rel=1e-6), name
    assert sum(terms.values()).item() == pytest.approx(focal * 3 + 2 * berhu, rel=1e-6)
    assert torch.equal(terms["seg"], FocalStyleCE(2.0)(logits, label))
    ce = module(seg_loss="ce").loss_terms(out, batch)
    assert ce["seg"].item() == pytest.approx(math.log(K), rel=1e-6)


def test_frames_without_depth_get_no_depth_loss():
    m = module()
    pred = torch.rand(2, 1, 6, 6, requires_grad=True)
    batch = {"label": torch.zeros(2, 6, 6, dtype=torch.long), "depth": torch.rand(2, 1, 6, 6) + 1,
             "depth_valid": torch.zeros(2, 1, 6, 6, dtype=torch.bool)}  # fmt: skip
    batch["depth_valid"][1] = True  # frame 0 has no depth supervision (partial depth, Table 5)
    out = {"logits": torch.zeros(2, K, 6, 6), "side": [], "depth": pred}
    m.loss_terms(out, batch)["depth"].backward()
    assert pred.grad[0].abs().sum() == 0 and pred.grad[1].abs().sum() > 0
    batch["depth_valid"][:] = False
    none = m.loss_terms(out, batch)["depth"]
    assert none.item() == 0.0 and none.requires_grad
    assert m.depth_frames(batch).tolist() == [False, False]


@pytest.mark.filterwarnings("ignore:You are trying to `self.log")
def test_every_loss_term_trains_the_network_through_its_own_output():
    """Each term of Eq. 8 is present, reaches its own output and the encoder; dropping or detaching one fails."""
    m = module()
    batch = make_batch(2, 32, 48, K=K)
    out = m.run(batch)
    outputs = {"seg": out["logits"], "distilled": out["distilled"], "depth": out["depth"]}
    outputs |= {f"side{k}": t for k, t in enumerate(out["side"], start=1)}
    terms = m.loss_terms(out, batch)
    assert terms.keys() == outputs.keys() == {"seg", "distilled", "side1", "side2", "side3", "depth"}
    conv1 = m.model.encoder.body.conv1.weight
    for name, term in terms.items():
        assert term.requires_grad, name
        grads = torch.autograd.grad(term, [outputs[n] for n in terms] + [conv1], retain_graph=True, allow_unused=True)
        own = dict(zip(terms, grads, strict=False))[name]
        assert own is not None and own.abs().sum() > 0, f"{name} does not reach its output"
        assert grads[-1] is not None and grads[-1].abs().sum() > 0, f"{name} does not reach the encoder"
    # The loss training_step optimises reaches every output.
    captured, run = [], m.run
    m.run = lambda b: captured.append(run(b)) or captured[-1]
    total = m.training_step(batch, 0)
    out = captured[0]
    grads = torch.autograd.grad(total, [out["logits"], out["distilled"], *out["side"], out["depth"]], allow_unused=True)
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize(("name", "value"), SWITCHES, ids=[f"{n}={v}" for n, v in SWITCHES])
def test_every_switch_changes_the_forward_pass(name, value):
    """Same weights wherever the two models share them: the switch must change the outputs or the loss."""
    batch = make_batch(2, 32, 32, K=K)
    full, changed = module().eval(), module(**{name: value}).eval()
    shared = changed.state_dict()
    shared.update({k: v for k, v in full.state_dict().items() if k in shared and shared[k].shape == v.shape})
    changed.load_state_dict(shared)
    with torch.no_grad():
        a, b = full.run(batch), changed.run(batch)
        same_out = torch.allclose(a["logits"], b["logits"])
        same_loss = torch.allclose(sum(full.loss_terms(a, batch).values()), sum(changed.loss_terms(b, batch).values()))
    assert not (same_out and same_loss), f"{name}={value} changed neither the outputs nor the loss"


def test_switches_that_change_nothing_are_refused(tmp_path):
    with pytest.raises(ValueError, match="featprop=True"):
        module(fusion="add")
    with pytest.raises(ValueError, match="needs a fusion block"):
        module(fusion="none", gap_placement="every_scale")
    with pytest.raises(ValueError, match="need depth_branch"):
        module(depth_branch=False, featprop=True)
    import lightning as L

    dm = IndoorDataModule(str(make_layout(tmp_path / "toy", frames=2)), "synthrooms", batch_size=2,
                          image_size=(32, 48), depth_fraction=0.0)  # fmt: skip
    trainer = L.Trainer(fast_dev_run=1, logger=False, enable_progress_bar=False, enable_model_summary=False)
    with pytest.raises(ValueError, match="sem \\+ L_s"):
        trainer.fit(module(), datamodule=dm)


def test_gap_form_direct_is_the_same_model_as_linear():
    batch = make_batch(1, 32, 32, K=K)
    lin, direct = module().eval(), module(gap_form="direct").eval()
    direct.load_state_dict(lin.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(lin(batch["image"]), direct(batch["image"]), atol=1e-4, rtol=1e-4)


def test_depth_output_is_metres_at_input_resolution():
    m = module()
    batch = make_batch(2, 37, 53, K=K)
    with torch.no_grad():
        depth = m.run(batch)["depth"]
        assert depth.shape == (2, 1, 37, 53) and (depth > 0).all()
        # With its weights zeroed the head outputs its initial bias: a typical indoor depth, 2.5 m, so berHu starts
        # small (a default-initialised bias would read about softplus(0) = 0.7 m).
        torch.nn.init.zeros_(m.model.depth_head.weight)
        start = m.run(batch)["depth"]
        # A head that outputs softplus⁻¹(5) everywhere must read 5 m: no hidden scale between output and metres.
        m.model.depth_head.bias.fill_(math.log(math.expm1(5.0)))
        out = m.run(batch)
    torch.testing.assert_close(start, torch.full((2, 1, 37, 53), 2.5))
    torch.testing.assert_close(out["depth"], torch.full((2, 1, 37, 53), 5.0))
    batch["depth"] = torch.full_like(batch["depth"], 5.0)
    assert m.loss_terms(out, batch)["depth"].item() == pytest.approx(0.0, abs=1e-5)


def test_odd_sizes_and_hha_row_needs_depth():
    check_odd_sizes(module(), K)
    m = module(hha_input=True).eval()
    assert m.model.encoder.body.conv1.in_channels == 6
    batch = make_batch(2, 37, 53, K=K)
    with torch.no_grad():
        assert m.eval_logits(batch).shape == (2, K, 37, 53)
        with pytest.raises(ValueError, match="needs depth"):
            m(batch["image"])
        batch["meta"] = {"orig_size": [(74, 106), (37, 53)]}
        out = m.predict_step(batch, 0)
    assert out["label"][0].shape == (74, 106)
    assert set(m.required_keys) == {"image", "label", "depth", "intrinsics"}
    assert set(module(depth_branch=False).required_keys) == {"image", "label"}


def test_checkpoint_round_trip(tmp_path):
    m = module(class_names=list("abcde"), grad_clip=5.0)
    check_checkpoint_round_trip(m, GeoAwareModule, tmp_path)


def test_grad_clip_touches_only_semantic_and_spf_groups():
    m = module(grad_clip=1e-3, encoder_lr_mult=1e-3, optimizer=lambda g: torch.optim.Adam(g, lr=1e-2))
    opt = m.configure_optimizers()
    assert {g["name"]: g["lr"] for g in opt.param_groups} == pytest.approx(
        {"encoder": 1e-5, "semantic": 1e-2, "spf": 1e-2, "depth": 1e-2}
    )
    sum(m.losses(make_batch(2, 32, 32, K=K)).values()).backward()

    def norms():
        return {g["name"]: torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in g["params"]
                                                                 if p.grad is not None])).item()
                for g in opt.param_groups}  # fmt: skip

    before = norms()
    m.on_before_optimizer_step(opt)
    after = norms()
    assert after["semantic"] <= 1e-3 * 1.001 and after["spf"] <= 1e-3 * 1.001
    assert before["semantic"] > 1e-3 and before["spf"] > 1e-3
    assert after["encoder"] == before["encoder"] and after["depth"] == before["depth"]


def test_depth_metrics_by_hand():
    preds = torch.tensor([1.0, 2.0, 3.0, 5.0]).view(1, 1, 2, 2)
    target = torch.tensor([1.0, 1.0, 0.0, 4.0]).view(1, 1, 2, 2)  # one pixel without depth
    metric = DepthMetrics()
    metric.update(preds, target)
    out = metric.compute()
    assert out["rmse"].item() == pytest.approx(math.sqrt(2 / 3))
    assert out["abs_rel"].item() == pytest.approx((0 + 1 + 0.25) / 3)
    assert out["delta1"].item() == pytest.approx(1 / 3)  # ratios 1, 2, 1.25 (not < 1.25)
    halves = DepthMetrics()  # sum-reduced states: two updates give the same as one
    halves.update(preds[..., :1], target[..., :1])
    halves.update(preds[..., 1:], target[..., 1:])
    assert {k: v.item() for k, v in halves.compute().items()} == pytest.approx({k: v.item() for k, v in out.items()})
    masked = DepthMetrics()
    masked.update(preds, target, mask=torch.tensor([True, False, True, True]).view(1, 1, 2, 2))
    assert masked.compute()["rmse"].item() == pytest.approx(math.sqrt(0.5))
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert math.isnan(DepthMetrics().compute()["rmse"].item())


def test_fit_logs_depth_metrics(tmp_path):
    import lightning as L  # after indoor_parsing, whose import guard must run before torchvision loads

    dm = IndoorDataModule(str(make_layout(tmp_path / "toy", frames=2)), "synthrooms", batch_size=2,
                          image_size=(32, 48), depth_fraction=0.5)  # fmt: skip
    m = GeoAwareModule(num_classes=dm.num_classes, **TINY)
    trainer = L.Trainer(fast_dev_run=1, logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(m, datamodule=dm)
    metrics = trainer.callback_metrics
    assert {"val/mIoU", "val/depth_rmse", "val/depth_abs_rel", "val/depth_delta1"} <= set(metrics)
    assert 0 < metrics["val/depth_rmse"] < 10


def test_gap_bench_reports_oom_from_the_estimate(capsys):
    rows = gap_bench.benchmark(["--sizes", "40x40", "--forms", "linear,direct", "--in-process", "--repeats", "1",
                           "--memory-limit-gb", "0.005"])  # fmt: skip
    status = {r["form"]: r["status"] for r in rows}
    assert status["linear"] == "ok" and status["direct"].startswith("OOM")
    assert "| direct | 40x40 |" in capsys.readouterr().out


def test_gap_bench_measures_memory_in_a_fresh_process(tmp_path):
    rows = gap_bench.benchmark(["--sizes", "24x32", "--forms", "direct", "--repeats", "1", "--threads", "1",
                           "--json", str(tmp_path / "bench.json")])  # fmt: skip
    assert rows[0]["status"] == "ok" and rows[0]["time_ms"] > 0 and rows[0]["peak_mib"] >= 0
    assert (tmp_path / "bench.json").is_file()


def test_gap_bench_runs_through_the_cli():
    from indoor_parsing import cli

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["gap-bench", "--sizes", "8x8", "--forms", "linear", "--in-process", "--repeats", "1"])
    assert exit_info.value.code == 0


@pytest.mark.parametrize("stride", [32, 16])
def test_encoder_output_stride_dilates_the_encoder_and_keeps_the_outputs_at_input_size(stride):
    """A dilated encoder: the bottleneck stays at 1/stride, both decoders start there and end at stride 2, as the
    paper's; the outputs stay at input size."""
    m = module(encoder_output_stride=stride).eval()
    batch = make_batch(2, 96, 128, K=K)
    seen = {}
    m.model.semantic.stages[0].register_forward_pre_hook(lambda mod, inp: seen.update(shape=inp[0].shape))
    for name in ("semantic", "depth"):
        stage = getattr(m.model, name).stages[-1]
        stage.register_forward_hook(lambda mod, inp, o, name=name: seen.update({name: o.shape}))
    with torch.no_grad():
        out = m.run(batch)
    assert tuple(seen["shape"][-2:]) == (96 // stride, 128 // stride)
    assert tuple(seen["semantic"][-2:]) == tuple(seen["depth"][-2:]) == (48, 64)
    assert out["logits"].shape == (2, K, 96, 128) and out["depth"].shape == (2, 1, 96, 128)
    assert all(t.shape == (2, K, 96, 128) for t in out["side"])
    with pytest.raises(ValueError, match="encoder_output_stride"):
        module(encoder_output_stride=8)
