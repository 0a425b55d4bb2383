import pytest
import torch

from indoor_parsing.data.sample import BatchContractError
from indoor_parsing.inference.checkpoints import init_arguments, load_method
from indoor_parsing.methods.base import Method, SegmentationModule
from indoor_parsing.methods.cascade_depth import DEPTH_STAGE_CLASS, CascadeDepthModule
from indoor_parsing.methods.geoaware import GeoAwareModule
from indoor_parsing.training.schedulers import PolyLR
from tests.helpers import make_batch
from tests.method_harness import check_checkpoint_round_trip, check_forward_backward, check_odd_sizes


@pytest.mark.parametrize("arch", ["Unet", "FPN", "PSPNet", "DeepLabV3Plus"])
def test_baseline_architectures(arch):
    module = SegmentationModule(num_classes=5, arch=arch, encoder_name="resnet18")
    batch = make_batch(2, 64, 64, K=5)
    terms = check_forward_backward(module, batch)
    assert set(terms) == {"ce"}
    check_odd_sizes(module, 5)


def test_arch_kwargs_reach_the_smp_network(tmp_path):
    """``arch_kwargs`` (the demo's narrower decoder) builds that decoder and survives a checkpoint round trip."""
    narrow = SegmentationModule(num_classes=5, arch_kwargs={"decoder_channels": [32, 16, 8, 8, 4]})
    default = SegmentationModule(num_classes=5)
    head = narrow.model.net.segmentation_head[0]
    assert (head.in_channels, default.model.net.segmentation_head[0].in_channels) == (4, 16)
    n = sum(p.numel() for p in narrow.parameters())
    assert n < sum(p.numel() for p in default.parameters())
    check_forward_backward(narrow, make_batch(2, 64, 64, K=5))
    check_checkpoint_round_trip(narrow, SegmentationModule, tmp_path)


def test_step_fraction_schedule_decays_at_its_fraction_of_any_run_length():
    from indoor_parsing.training.schedulers import StepFractionLR

    for total in (40, 800):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        sched = StepFractionLR(opt, milestones=(0.5, 0.75), gamma=0.1, total_steps=total)
        lrs = []
        for _ in range(total):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        assert lrs[total // 2 - 1] == 1.0 and lrs[total // 2] == pytest.approx(0.1)
        assert lrs[3 * total // 4 - 1] == pytest.approx(0.1) and lrs[-1] == pytest.approx(0.01)
    with pytest.raises(ValueError, match="ascending fractions"):
        StepFractionLR(opt, milestones=(0.8, 0.5))


def test_checkpoint_round_trip(tmp_path):
    module = SegmentationModule(num_classes=4, class_names=list("abcd"))
    check_checkpoint_round_trip(module, SegmentationModule, tmp_path)


def test_encoder_lr_multiplier_and_poly_schedule():
    module = SegmentationModule(
        num_classes=3, encoder_lr_mult=0.1,
        optimizer=lambda groups: torch.optim.SGD(groups, lr=0.01),
        scheduler=lambda opt: PolyLR(opt, power=0.9, total_steps=10), scheduler_interval="step",
    )  # fmt: skip
    config = module.configure_optimizers()
    opt, sched = config["optimizer"], config["lr_scheduler"]["scheduler"]
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs == pytest.approx({"encoder": 0.001, "head": 0.01})
    for _ in range(5):
        opt.step()
        sched.step()
    assert opt.param_groups[1]["lr"] == pytest.approx(0.01 * 0.5**0.9)


def test_class_weights_change_the_loss():
    batch = make_batch(2, 32, 32, K=3)
    module = SegmentationModule(num_classes=3, class_weighting="median_frequency")
    torch.manual_seed(0)
    plain = module.cross_entropy(torch.randn(2, 3, 32, 32), batch["label"])
    module.class_weights.copy_(torch.tensor([0.2, 1.0, 5.0]))
    torch.manual_seed(0)
    weighted = module.cross_entropy(torch.randn(2, 3, 32, 32), batch["label"])
    assert not torch.isclose(plain, weighted)


def test_predict_step_returns_original_size():
    module = SegmentationModule(num_classes=3).eval()
    batch = make_batch(2, 32, 48, K=3)
    batch["meta"] = {"orig_size": [(64, 96), (32, 48)], "scene": ["s", "s"], "sequence": ["", ""], "index": [0, 1]}
    out = module.predict_step(batch, 0)
    assert out["label"][0].shape == (64, 96) and out["label"][1].shape == (32, 48)
    assert int(out["label"][0].max()) < 3


def _record_logs(module) -> dict:
    logged = {}
    module.log = lambda name, value, **kw: logged.__setitem__(name, (value, kw.get("batch_size")))
    module.log_dict = lambda values, **kw: logged.update({k: (v, kw.get("batch_size")) for k, v in values.items()})
    return logged


def test_one_training_step_for_plain_and_source_target_batches():
    module = SegmentationModule(num_classes=3).eval()  # eval: BatchNorm statistics do not move between the calls
    logged = _record_logs(module)
    batch = make_batch(2, 32, 32, K=3)
    plain = module.training_step(batch, 0)
    assert logged == {"train/loss": (plain, 2)}  # one term: no train/<term> line
    paired = {"source": batch, "target": {"image": torch.randn(3, 3, 32, 32)}}
    assert torch.equal(module.training_step(paired, 0), plain)  # the labelled source part only
    module._validated = False
    with pytest.raises(BatchContractError, match="source.'label'"):
        module.training_step({"source": {"image": batch["image"]}}, 0)


class _Manual(SegmentationModule):
    """Steps its own optimiser: the base logs the terms the manual step returns."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.automatic_optimization = False

    def manual_optimization_step(self, batch: dict) -> dict[str, torch.Tensor]:
        return {"ce": torch.tensor(1.5), "extra": torch.tensor(0.5)}


def test_manual_optimization_hook():
    module = _Manual(num_classes=3)
    logged = _record_logs(module)
    assert module.training_step(make_batch(2, 32, 32, K=3), 0) is None  # Lightning must not step anything itself
    assert {k: float(v) for k, (v, _) in logged.items()} == {"train/loss": 2.0, "train/ce": 1.5, "train/extra": 0.5}


def test_a_method_without_its_model_or_its_manual_step_is_refused():
    with pytest.raises(TypeError, match="build_model"):
        Method(num_classes=3)

    class NoManualStep(SegmentationModule):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.automatic_optimization = False

    with pytest.raises(TypeError, match="manual_optimization_step"):
        NoManualStep(num_classes=3).training_step(make_batch(2, 32, 32, K=3), 0)


def test_only_the_smp_baseline_takes_an_arch():
    assert "arch" in init_arguments(SegmentationModule) and "arch" not in init_arguments(Method)
    args = init_arguments(GeoAwareModule)  # its own arguments and, through **kwargs, the base's
    assert {"seg_loss", "encoder_name", "num_classes", "scheduler", "encoder_lr_mult"} <= args
    assert "arch" not in args and "arch" not in GeoAwareModule(num_classes=3, encoder_name="resnet18").hparams


def test_checkpoints_with_a_legacy_arch_still_load(tmp_path):
    module = CascadeDepthModule(encoder_name="resnet18")
    torch.save({"hyper_parameters": {**module.hparams, "arch": "DepthNet"}, "state_dict": module.state_dict(),
                "inference": {"class": DEPTH_STAGE_CLASS, "image_size": None}}, tmp_path / "old.ckpt")  # fmt: skip
    loaded, _ = load_method(tmp_path / "old.ckpt")
    assert isinstance(loaded, CascadeDepthModule) and "arch" not in loaded.hparams
