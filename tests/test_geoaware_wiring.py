"""GeoAwareNet wired as Fig. 2 / Fig. 4: forward-pass and gradient checks that fail when a block is bypassed.

Each test captures the tensors that flow between blocks (forward hooks) and recomputes the wiring by hand, or checks
where gradients go; none passes on parameter shapes alone.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from indoor_parsing.geometry.hha import hha
from indoor_parsing.methods.geoaware import GeoAwareModule
from indoor_parsing.models.geoaware import SPFBlock
from tests.helpers import make_batch

K = 5
TINY = {"encoder_name": "resnet18", "decoder_channels": (16, 16, 8, 8), "spf_channels": 8, "gap_key_channels": 4}
FEATPROP_ROW = {"scale_propagation": False, "fusion": "none", "spf": False}
SCALEPROP_ROW = {"fusion": "none", "spf": False}


def module(**kw) -> GeoAwareModule:
    torch.manual_seed(0)
    return GeoAwareModule(num_classes=K, **{**TINY, **kw})


class Capture:
    """Forward hooks recording each named module's inputs and output during one forward."""

    def __init__(self, **modules):
        self.inputs, self.outputs, self.handles = {}, {}, []
        for name, mod in modules.items():
            self.handles.append(mod.register_forward_hook(self._hook(name)))

    def _hook(self, name):
        def hook(mod, args, out):
            self.inputs[name], self.outputs[name] = args, out

        return hook

    def close(self):
        for h in self.handles:
            h.remove()


def _stages(m: GeoAwareModule) -> dict:
    net = m.model
    semantic = {f"s{k}": st for k, st in enumerate(net.semantic.stages)}
    return semantic | {f"d{k}": st for k, st in enumerate(net.depth.stages)} | {"head": net.head}


def _up(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(t, size=like.shape[-2:], mode="bilinear", align_corners=False)


@pytest.mark.parametrize("kw", [FEATPROP_ROW, {}], ids=["featprop_row", "full_model"])
def test_featprop_sums_depth_features_into_every_semantic_scale(kw):
    m = module(**kw).eval()
    cap = Capture(**_stages(m))
    with torch.no_grad():
        m.run(make_batch(1, 64, 64, K=K))
    cap.close()
    o, i = cap.outputs, cap.inputs
    for k in range(3):  # the next semantic stage reads s_k + G_k
        torch.testing.assert_close(i[f"s{k + 1}"][0], o[f"s{k}"] + o[f"d{k}"])
    if kw == FEATPROP_ROW:  # last scale: no scale propagation, no fusion: the head reads s_4 + G_4
        torch.testing.assert_close(i["head"][0], o["s3"] + o["d3"])


def test_scale_propagation_adds_every_scale_into_the_last_layer_of_both_decoders():
    m = module(**SCALEPROP_ROW).eval()
    net = m.model
    cap = Capture(**_stages(m), depth_head=net.depth_head)
    with torch.no_grad():
        m.run(make_batch(1, 64, 64, K=K))
    cap.close()
    o, i = cap.outputs, cap.inputs
    fused = [o[f"s{k}"] + o[f"d{k}"] for k in range(4)]  # FeatProp at every scale
    expected = fused[-1] + sum(_up(p(f), fused[-1]) for p, f in zip(net.semantic_scales.proj, fused[:-1], strict=True))
    torch.testing.assert_close(i["head"][0], expected)
    assert (expected - fused[-1]).abs().max() > 1e-3  # the propagated scales contribute
    g = [o[f"d{k}"] for k in range(4)]
    expected_g = g[-1] + sum(_up(p(f), g[-1]) for p, f in zip(net.depth_scales.proj, g[:-1], strict=True))
    torch.testing.assert_close(i["depth_head"][0], expected_g)


def test_one_gap_block_at_the_end_distils_the_last_semantic_feature():
    m = module().eval()
    net = m.model
    assert len(net.fusion) == 1
    cap = Capture(gap=net.fusion[0], sem=net.semantic_scales, dep=net.depth_scales, head=net.head, spf0=net.spf[0])
    with torch.no_grad():
        m.run(make_batch(1, 64, 64, K=K))
    cap.close()
    p, g = cap.inputs["gap"]
    assert p is cap.outputs["sem"] and torch.equal(g, cap.outputs["dep"])  # Eq. 5 on the propagated features, final G
    q = cap.outputs["gap"]
    assert cap.inputs["head"][0] is q and cap.inputs["spf0"][0] is q  # distilled head and SPF read GAP's output
    assert (q - p).abs().max() > 1e-3
    # The prediction depends on the affinity from G: the semantic loss reaches η(G) and φ(G).
    m.train()
    m.loss_terms(m.run(make_batch(2, 64, 64, K=K)), make_batch(2, 64, 64, K=K))["seg"].backward()
    for conv in (net.fusion[0].eta[0], net.fusion[0].phi[0], net.fusion[0].delta[0]):
        assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


def test_gap_at_every_scale_variant_uses_one_block_per_scale():
    m = module(gap_placement="every_scale")
    net = m.model
    assert len(net.fusion) == 4
    cap = Capture(**{f"gap{k}": blk for k, blk in enumerate(net.fusion)}, **_stages(m))
    batch = make_batch(2, 64, 64, K=K)
    m.loss_terms(m.run(batch), batch)["seg"].backward()
    cap.close()
    for k in range(4):
        p, g = cap.inputs[f"gap{k}"]
        torch.testing.assert_close(p, cap.outputs[f"s{k}"] + cap.outputs[f"d{k}"])  # after the FeatProp sum
        assert torch.equal(g, cap.outputs[f"d{k}"])
        assert net.fusion[k].eta[0].weight.grad.abs().sum() > 0
    for k in range(3):
        assert cap.inputs[f"s{k + 1}"][0] is cap.outputs[f"gap{k}"]


def test_spf_refines_the_distilled_features_with_the_encoder_levels():
    m = module().eval()
    net = m.model
    cap = Capture(enc=net.encoder, head=net.head, **{f"b{k}": b for k, b in enumerate(net.spf)})
    with torch.no_grad():
        out = m.run(make_batch(1, 64, 64, K=K))
    cap.close()
    feats = cap.outputs["enc"]
    for k in range(4):
        x, skip = cap.inputs[f"b{k}"]
        assert skip is feats[4 - k]  # encoder levels at strides 32, 16, 8, 4
        if k:
            assert x is cap.outputs[f"b{k - 1}"][0]
    last_side = cap.outputs["b3"][1]
    torch.testing.assert_close(out["logits"], F.interpolate(last_side, size=(64, 64), mode="bilinear"))
    torch.testing.assert_close(out["distilled"], F.interpolate(cap.outputs["head"], size=(64, 64), mode="bilinear"))
    assert len(out["side"]) == 3 and not torch.allclose(out["logits"], out["distilled"])


def test_spf_block_applies_the_activation_before_the_resize():
    torch.manual_seed(0)
    block = SPFBlock(4, 6, 5, K).eval()
    x, skip = torch.randn(1, 4, 16, 16), torch.randn(1, 6, 4, 4)
    with torch.no_grad():
        feat, side = block(x, skip)
        conv = block.skip[0]
        before = F.interpolate(F.relu(conv(skip)), size=(16, 16), mode="bilinear")  # Fig. 4
        after = F.relu(F.interpolate(conv(skip), size=(16, 16), mode="bilinear"))
        assert (before - after).abs().max() > 1e-2  # the order matters for these inputs
        torch.testing.assert_close(feat, block.fuse(torch.cat([block.prev(x), before], 1)))
        torch.testing.assert_close(side, block.side(feat))


def test_non_backbone_layers_get_he_initialisation():
    m = GeoAwareModule(num_classes=K, encoder_name="resnet18", decoder_channels=(64, 64, 32, 32), spf_channels=32)
    net = m.model
    convs = [c for part in net.semantic_modules() + [net.spf] + net.depth_modules()
             for c in part.modules() if isinstance(c, torch.nn.Conv2d)]  # fmt: skip
    checked = 0
    for conv in convs:
        fan_in = conv.weight[0].numel()
        if conv.weight.numel() >= 2000:
            assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.15), conv
            checked += 1
        assert conv.bias is None or conv is net.depth_head or not conv.bias.any()
    assert checked >= 10
    bns = [b for part in net.semantic_modules() for b in part.modules() if isinstance(b, torch.nn.BatchNorm2d)]
    assert all(torch.equal(b.weight, torch.ones_like(b.weight)) for b in bns)


def _depth_grads(m: GeoAwareModule) -> list[float]:
    params = [p for part in m.model.depth_modules() for p in part.parameters()]
    return [0.0 if p.grad is None else p.grad.abs().sum().item() for p in params]


def test_frames_without_depth_send_no_gradient_to_the_depth_branch():
    m = module()
    batch = make_batch(2, 64, 64, K=K)
    batch["depth_valid"][:] = False  # a batch of frames without depth supervision (Table 5)
    sum(m.losses(batch).values()).backward()
    assert max(_depth_grads(m)) == 0.0
    assert m.model.encoder.body.conv1.weight.grad.abs().sum() > 0  # the semantic losses still train
    m.zero_grad()
    batch["depth_valid"][:] = True
    sum(m.losses(batch).values()).backward()
    assert min(_depth_grads(m)) > 0.0
    m.zero_grad()
    # Mixed batch, BN on running statistics (no coupling of frames through batch statistics): frame 0 has no depth.
    m.eval()
    batch["depth_valid"][0] = False
    for frame, expect_zero in ((0, True), (1, False)):
        only = dict(batch, label=batch["label"].clone())
        only["label"][1 - frame] = 255  # the semantic losses of one frame only
        terms = m.losses(only)
        sum(v for k, v in terms.items() if k != "depth").backward()
        assert (max(_depth_grads(m)) == 0.0) == expect_zero, frame
        m.zero_grad()


def test_hha_floor_fallback_when_no_floor_is_visible():
    """Gupta et al.: a lowest point less than 0.9 m below the camera is no floor; the floor is then 1.3 m below."""
    H, W = 40, 40
    K_ = torch.tensor([[[30.0, 0, 19.5], [0, 30.0, 19.5], [0, 0, 1]]], dtype=torch.float64)
    level = torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64)  # camera y points down
    y = (torch.arange(H, dtype=torch.float64) - 19.5) / 30.0  # y / z per row
    for z, fallback in ((1.0, True), (5.0, False)):  # a wall 1 m away (lowest point 0.65 m down) or 5 m (3.25 m)
        depth = torch.full((1, 1, H, W), z, dtype=torch.float64)
        height = hha(depth, K_, gravity=level)[0, 1, :, 0] * 255  # cm above the floor
        up = -y * z * 100  # cm above the camera
        floor = -130.0 if fallback else up.min()
        torch.testing.assert_close(height, (up - floor).clamp(0, 255))
    assert hha(torch.zeros(1, 1, H, W, dtype=torch.float64), K_).abs().max() == 0  # no depth: all zero
