"""Geometry-Aware Propagation (GAP, Jiao et al., CVPR 2019, Eq. 3-5 / Fig. 3) and its VanConv alternative.

Eq. 5 propagates semantic features ``p`` over an affinity computed from the depth-aware embedding ``G``:

    q_i = Σ_j η(G_i)ᵀφ(G_j) δ(p_j) / Σ_j η(G_i)ᵀφ(G_j) + p_i

The affinity ``a_ij = η_iᵀφ_j`` is not a softmax, so by associativity the sum over j can be taken first:

    q_i = η_iᵀ (Σ_j φ_j δ_jᵀ) / η_iᵀ (Σ_j φ_j) + p_i

which is exact and costs O(N C' C) instead of the O(N² C) time and O(N²) memory of the affinity matrix. Both forms
are here (``gap_direct``, ``gap_linear``), plus the softmax affinity of non-local blocks (``gap_softmax``), which the
authors' released code uses over depth features; only the softmax form needs ``F.scaled_dot_product_attention``.

Non-negativity: the normalisation Σ_j a_ij must not vanish or change sign, so the linear / direct forms pass η and φ
through softplus (strictly positive; ReLU is available but can zero a whole row) and add ``eps`` to the denominator.
"""

import torch
import torch.nn.functional as F
from torch import nn

from indoor_parsing.models.blocks import conv_bn

FORMS = ("linear", "direct", "softmax")
POSITIVE = ("softplus", "relu")


def gap_direct(eta: torch.Tensor, phi: torch.Tensor, value: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Eq. 5 with the explicit (N, N) affinity; O(N²) memory (reference and benchmark only).

    Shape:
        eta, phi: (B, C', N) non-negative; value: (B, C, N) = δ(p); output: (B, C, N) (without the residual).
    """
    affinity = eta.transpose(1, 2) @ phi  # (B, N, N) a_ij = η_iᵀφ_j
    num = affinity @ value.transpose(1, 2)  # (B, N, C)
    den = affinity.sum(2, keepdim=True) + eps  # (B, N, 1)
    return (num / den).transpose(1, 2)


def gap_linear(eta: torch.Tensor, phi: torch.Tensor, value: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Eq. 5 by associativity, η_iᵀ(Σ_j φ_j δ_jᵀ) / η_iᵀ(Σ_j φ_j): same result as ``gap_direct``, O(N) memory.

    Shape:
        eta, phi: (B, C', N) non-negative; value: (B, C, N) = δ(p); output: (B, C, N) (without the residual).
    """
    context = phi @ value.transpose(1, 2)  # (B, C', C) Σ_j φ_j δ_jᵀ
    num = eta.transpose(1, 2) @ context  # (B, N, C)
    den = (eta * phi.sum(2, keepdim=True)).sum(1).unsqueeze(2) + eps  # (B, N, 1) η_iᵀ Σ_j φ_j
    return (num / den).transpose(1, 2)


def gap_softmax(eta: torch.Tensor, phi: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Softmax affinity ``softmax_j(η_iᵀφ_j / sqrt(C'))`` (non-local style) via fused attention kernels.

    Shape:
        eta, phi: (B, C', N); value: (B, C, N); output: (B, C, N) (without the residual).
    """
    Ck, C = eta.shape[1], value.shape[1]
    # Fused (flash) kernels need one head size for q, k and v and contiguous rows, else SDPA falls back to the math
    # kernel and builds the (N, N) matrix; zero-padding changes no dot product, the explicit scale keeps 1/sqrt(C').
    D = max(Ck, C)

    def head(t: torch.Tensor) -> torch.Tensor:  # (B, c, N) -> (B, 1, N, D)
        return F.pad(t, (0, 0, 0, D - t.shape[1])).transpose(1, 2).contiguous().unsqueeze(1)

    q, k, v = head(eta), head(phi), head(value)
    out = F.scaled_dot_product_attention(q, k, v, scale=Ck**-0.5)  # (B, 1, N, D)
    return out.squeeze(1).transpose(1, 2)[:, :C]


class GAP(nn.Module):
    """Geometry-aware propagation of semantic features over a depth-embedding affinity (Jiao et al., Eq. 3-5).

    η(G), φ(G): 1x1 conv + BN on the depth-aware embedding (then softplus / ReLU for the non-softmax forms);
    δ(p): 1x1 conv + BN on the semantic features. The output keeps p's channels (residual ``+ p``).

    Args:
        channels: C of the semantic features p.
        depth_channels: channels of the depth-aware embedding G.
        key_channels: C' of η and φ.
        form: ``"linear"`` (exact, O(N)), ``"direct"`` (exact, O(N²) memory) or ``"softmax"`` (softmax affinity).
        positive: non-negativity of η, φ for the linear / direct forms: ``"softplus"`` or ``"relu"``.
        eps: added to the normaliser Σ_j a_ij.

    Shape:
        p: (B, C, H, W); g: (B, C_g, H, W) -> (B, C, H, W).
    """

    def __init__(
        self, channels: int, depth_channels: int, key_channels: int = 32, form: str = "linear",
        positive: str = "softplus", eps: float = 1e-6,
    ) -> None:  # fmt: skip
        super().__init__()
        if form not in FORMS:
            raise ValueError(f"GAP: form must be one of {FORMS}, got {form!r}")
        if positive not in POSITIVE:
            raise ValueError(f"GAP: positive must be one of {POSITIVE}, got {positive!r}")
        self.form, self.positive, self.eps = form, positive, eps
        self.eta = conv_bn(depth_channels, key_channels)  # Eq. 4: η(G)
        self.phi = conv_bn(depth_channels, key_channels)  # Eq. 4: φ(G)
        self.delta = conv_bn(channels, channels)  # Eq. 5: δ(p)

    def forward(self, p: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        if p.shape[-2:] != g.shape[-2:]:
            raise ValueError(f"GAP: semantic {tuple(p.shape)} and depth {tuple(g.shape)} features differ in size")
        B, C, H, W = p.shape
        eta, phi = self.eta(g).flatten(2), self.phi(g).flatten(2)  # (B, C', N)
        value = self.delta(p).flatten(2)  # (B, C, N)
        if self.form == "softmax":
            out = gap_softmax(eta, phi, value)
        else:
            act = F.softplus if self.positive == "softplus" else F.relu
            eta, phi = act(eta), act(phi)
            fn = gap_linear if self.form == "linear" else gap_direct
            out = fn(eta, phi, value, self.eps)
        return out.view(B, C, H, W) + p  # Eq. 5: residual keeps p


class VanConv(nn.Module):
    """Vanilla fusion of Fig. 3 (bottom): concatenate depth and semantic features, 1x1 conv, BN; no affinity.

    Shape:
        p: (B, C, H, W); g: (B, C_g, H, W) -> (B, C, H, W).
    """

    def __init__(self, channels: int, depth_channels: int) -> None:
        super().__init__()
        self.fuse = conv_bn(channels + depth_channels, channels)

    def forward(self, p: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([p, g], 1))
