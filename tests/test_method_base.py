import pytest
import torch

from indoor_parsing.methods.base import SegmentationModule
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
