"""S4-Net wiring: every loss term carries its gradient where the paper sends it, every neighbour reaches the merge,
every mask of L_G and L_DG masks, the teacher stays frozen, and L_G's coverage is logged and watched."""

import pytest
import torch
import torch.nn.functional as F

from indoor_parsing.geometry.camera import backproject
from indoor_parsing.methods.s4net import S4NetModule, merge_labels, photometric_consistency
from indoor_parsing.methods.s4net_consistency import CoverageMonitor
from tests.test_s4net import K20, _pose, combined_batch, module


def _grad_norms(term: torch.Tensor, parts: dict[str, torch.nn.Module]) -> dict[str, float]:
    """|d term / d params| summed per network part (0 when the term does not reach it); a detached term fails."""
    params = {name: [p for p in part.parameters() if p.requires_grad] for name, part in parts.items()}
    flat = [p for ps in params.values() for p in ps]
    grads = torch.autograd.grad(term, flat, retain_graph=True, allow_unused=True)
    out, k = {}, 0
    for name, ps in params.items():
        out[name] = sum(float(g.abs().sum()) for g in grads[k : k + len(ps)] if g is not None)
        k += len(ps)
    return out


@pytest.mark.parametrize("warp_depth", ["sensor", "predicted"])
def test_every_loss_term_reaches_the_parts_it_trains(warp_depth):
    torch.manual_seed(0)
    m = module(depth_prediction=True, warp_depth=warp_depth, arch="PSPNet", aux_head=True)
    m.refresh_teacher_if_due(0)
    m.train()
    terms = m.losses(combined_batch())
    assert set(terms) == {"seg", "seg_aux", "depth", "geo", "geo_aux", "photo"}
    parts = {"encoder": m.model.encoder, "seg": m.model.head, "aux": m.model.aux, "depth": m.model.depth_decoder}
    g = {name: _grad_norms(term, parts) for name, term in terms.items()}
    assert g["seg"]["seg"] > 0 and g["seg"]["encoder"] > 0 and g["seg"]["depth"] == 0  # L_S
    assert g["seg_aux"]["aux"] > 0 and g["seg_aux"]["seg"] == 0
    assert g["depth"]["depth"] > 0 and g["depth"]["seg"] == 0  # L_DS
    assert g["geo"]["seg"] > 0 and g["geo"]["encoder"] > 0  # L_G
    assert g["geo"]["depth"] == 0  # Sec. 3.3: the depth used by L_G's warp is held constant
    assert g["geo_aux"]["aux"] > 0
    assert g["photo"]["depth"] > 0 and g["photo"]["seg"] == 0  # L_DG trains the depth through the warp


def test_training_step_optimises_the_sum_of_every_term():
    m = module(depth_prediction=True)
    m.refresh_teacher_if_due(0)
    m.train()
    batch = combined_batch()
    torch.manual_seed(0)  # the same dropout draws in both evaluations
    loss = m.training_step(batch, 0)
    torch.manual_seed(0)
    terms = m.losses(batch)
    assert set(terms) == {"seg", "depth", "geo", "photo"}
    torch.testing.assert_close(loss, sum(terms.values()))
    assert loss.requires_grad


def test_source_loss_is_the_weighted_cross_entropy_of_the_source_batch():
    m = module(consistency_weight=0.0)
    m.eval()  # deterministic forward
    batch = combined_batch()
    out = m.model(batch["source"]["image"])["logits"]
    torch.testing.assert_close(m.losses(batch)["seg"], m.cross_entropy(out, batch["source"]["label"]))


def _one_hot(cls: int, H: int, W: int, K: int = 3) -> torch.Tensor:
    return F.one_hot(torch.full((1, H, W), cls), K).permute(0, 3, 1, 2).float()


def test_every_neighbour_enters_the_merge():
    H, W = 6, 8
    left, right = torch.zeros(1, 1, H, W, dtype=torch.bool), torch.zeros(1, 1, H, W, dtype=torch.bool)
    left[..., : W // 2], right[..., W // 2 - 1 :] = True, True  # overlap in one column
    soft = torch.tensor([0.6, 0.4, 0.0]).view(1, 3, 1, 1).expand(1, 3, H, W)
    warped = [
        {"prob": soft, "valid": left, "near": torch.zeros_like(left)},
        {"prob": 0.9 * _one_hot(1, H, W) + 0.05, "valid": right, "near": torch.zeros_like(right)},
    ]
    label = merge_labels(warped)[0]
    assert (label[:, : W // 2 - 1] == 0).all() and (label[:, W // 2 :] == 1).all()
    assert (label[:, W // 2 - 1] == 1).all()  # both valid: the summed probabilities decide (0.65 vs 1.3)
    warped[1]["near"] = right.clone()  # a valid neighbour near a boundary vetoes the pixel
    assert (merge_labels(warped)[0][:, W // 2 - 1 :] == 255).all()


def test_geo_label_comes_from_every_neighbour_of_the_batch():
    """Neighbour k sees only band k of the target and its teacher says class k: L_G's label covers every band."""
    m = module(boundary_width=0)
    m.refresh_teacher_if_due(0)
    batch = combined_batch(B=1, neighbors=3)
    H, W = 32, 32
    bands = [slice(3, 12), slice(12, 21), slice(21, 32)]
    for k, nb in enumerate(batch["target"]["neighbors"]):
        nb["pose"] = _pose(1)  # same view as the target: each neighbour's depth decides where it is valid
        nb["depth"] = torch.zeros(1, 1, H, W)
        nb["depth"][..., bands[k], :] = 2.0
    teacher_seg = torch.cat([10 * _one_hot(k, H, W, K20) for k in range(3)])  # (3 neighbours, K, H, W)
    m.teacher.forward = lambda image: {"logits": teacher_seg}
    seg = torch.zeros(1, K20, H, W, requires_grad=True)
    m.model.forward = lambda image: {"logits": seg}
    m.target_losses(batch["target"])["geo"].backward()
    label = torch.where(seg.grad[0].abs().sum(0) > 0, seg.grad[0].argmin(0), 255)  # CE gradient is < 0 at the label
    for k, rows in enumerate(bands):
        assert (label[rows, 1:-1] == k).all(), k
    assert m.last_coverage["geo_frames_without_neighbor"] == 0.0
    assert m.last_coverage["geo_coverage"] == pytest.approx(float((label != 255).float().mean()))


@pytest.mark.parametrize("mask", ["valid", "near", "agree"])
def test_photometric_term_counts_only_valid_unbounded_agreeing_pixels(mask):
    """A region whose warped colours are wrong adds nothing to L_DG when the mask under test excludes it."""
    g = torch.Generator().manual_seed(0)
    H, W = 24, 32
    rgb = torch.rand(1, 3, H, W, generator=g)
    wrong = rgb.clone()
    wrong[..., 8:16, 10:22] = 1 - wrong[..., 8:16, 10:22]
    region = torch.zeros(1, 1, H, W, dtype=torch.bool)
    region[..., 8:16, 10:22] = True
    seg = torch.zeros(1, H, W, dtype=torch.long)

    def warped(excluded: bool) -> list[dict]:
        hide = region if excluded else torch.zeros_like(region)
        prob = torch.where(hide & (mask == "agree"), _one_hot(1, H, W), _one_hot(0, H, W))
        valid = ~(hide & (mask == "valid"))
        near = hide & (mask == "near")
        return [{"rgb": wrong, "prob": prob, "valid": valid, "near": near}]

    kept = photometric_consistency(rgb, seg, warped(False), alpha=0.85)
    masked = photometric_consistency(rgb, seg, warped(True), alpha=0.85)
    assert kept > 0.1 and masked < 0.2 * kept  # SSIM windows overlapping the region leave a small remainder


def test_teacher_gets_no_gradient_and_no_optimiser_slot():
    m = module(depth_prediction=True, optimizer=lambda p: torch.optim.SGD(p, lr=0.1))
    m.refresh_teacher_if_due(0)
    before = {k: v.clone() for k, v in m.teacher.state_dict().items()}
    opt = m.configure_optimizers()
    sum(m.losses(combined_batch()).values()).backward()
    opt.step()
    in_opt = {id(p) for group in opt.param_groups for p in group["params"]}
    assert all(p.grad is None and id(p) not in in_opt and not p.requires_grad for p in m.teacher.parameters())
    assert all(torch.equal(before[k], v) for k, v in m.teacher.state_dict().items())
    assert not all(torch.equal(m.teacher.state_dict()[k], v) for k, v in m.model.state_dict().items())


def test_reversed_poses_collapse_coverage_and_warn_once(recwarn):
    """Neighbours of a rotated camera: the inverse (world-to-camera) poses put the warps outside the views."""
    m = module().eval()  # a single frame: BatchNorm in training mode cannot run on it
    m.refresh_teacher_if_due(0)
    good = combined_batch(B=1, neighbors=2)
    for k, nb in enumerate(good["target"]["neighbors"]):
        angle = 0.15 * (k + 1)  # a turn about y, the camera also moving 1 m sideways
        c, s = torch.cos(torch.tensor(angle)), torch.sin(torch.tensor(angle))
        nb["pose"] = torch.tensor([[c, 0, s, 1.0], [0, 1, 0, 0], [-s, 0, c, 0.3], [0, 0, 0, 1]])[None]
        rays = nb["pose"][0, :3, :3] @ backproject(torch.ones(1, 1, 32, 32), nb["intrinsics"])[0].flatten(1)
        nb["depth"] = ((2.0 - nb["pose"][0, 2, 3]) / rays[2]).view(1, 1, 32, 32)  # the wall z = 2 seen from there
    good["target"]["pose"] = torch.tensor([[1.0, 0, 0, 0.6], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])[None]
    with torch.no_grad():
        m.target_losses(good["target"])
    ok = m.last_coverage["geo_coverage"]
    m.coverage = CoverageMonitor(after=2)
    bad = {**good["target"], "pose": torch.linalg.inv(good["target"]["pose"])}
    bad["neighbors"] = [{**nb, "pose": torch.linalg.inv(nb["pose"])} for nb in good["target"]["neighbors"]]
    with torch.no_grad():
        for _ in range(3):
            m.target_losses(bad)
    assert ok > 0.3 and m.last_coverage["geo_coverage"] < 0.02, (ok, m.last_coverage)
    assert m.last_coverage["geo_frames_without_neighbor"] == 1.0
    messages = [str(w.message) for w in recwarn if "L_G covers only" in str(w.message)]
    assert len(messages) == 1 and "camera-to-world" in messages[0]


def test_rgb_only_target_needs_the_depth_predicting_variant():
    m = module()
    m.refresh_teacher_if_due(0)
    batch = combined_batch()
    batch["target"].pop("depth")
    for nb in batch["target"]["neighbors"]:
        nb.pop("depth")
    with pytest.raises(ValueError, match="RGB-only"):
        m.training_step(batch, 0)
    m = module(depth_prediction=True, warp_depth="predicted")
    m.refresh_teacher_if_due(0)
    assert set(m.losses(batch)) == {"seg", "depth", "geo", "photo"}
    assert isinstance(m, S4NetModule)


def test_predicted_depth_warps_use_the_scale_tolerant_occlusion_test():
    """Student depth 10 % too far, teacher depth 10 % too near: L_G (and L_DG) still get the whole wall."""
    m = module(depth_prediction=True, warp_depth="predicted", boundary_width=0)
    m.refresh_teacher_if_due(0)
    batch = combined_batch(B=1, neighbors=1)
    H, W = 32, 32
    seg = torch.zeros(1, K20, H, W, requires_grad=True)
    m.model.forward = lambda image: {"logits": seg, "depth": torch.full((1, 1, H, W), 2.2)}
    m.teacher.forward = lambda image: {"logits": torch.zeros(1, K20, H, W),
                                       "depth": torch.full((1, 1, H, W), 1.8)}  # fmt: skip
    m.target_losses(batch["target"])
    assert m.last_coverage["geo_coverage"] > 0.8
