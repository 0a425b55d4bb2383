"""Semantic-aware feature discriminators of unpaired 3D-to-2D Distillation (Liu, Qi, Fu, CVPR 2021, Sec. 3.3).

One discriminator D_c per category shared by the 2D and 3D label sets tells teacher point features of category c
(real) from simulated 3D features of pixels of category c (fake); ``shared=True`` uses one D for every category
(Table 7's ablation).
"""

import torch
import torch.nn.functional as F
from torch import nn

WIDTHS = (64, 32, 16, 8, 4)


class FeatureDiscriminator(nn.Sequential):
    """Six fully connected layers C -> 64 -> 32 -> 16 -> 8 -> 4 -> 1 with LeakyReLU.

    Returns the logit: the paper's final sigmoid is folded into the binary cross-entropy of
    :func:`discriminator_loss` / :func:`generator_loss` (the same function, numerically stable).

    Shape:
        (N, C) -> (N, 1).
    """

    def __init__(self, channels: int, widths: tuple[int, ...] = WIDTHS, slope: float = 0.2):
        layers: list[nn.Module] = []
        cin = channels
        for w in widths:
            layers += [nn.Linear(cin, w), nn.LeakyReLU(slope, inplace=True)]
            cin = w
        layers.append(nn.Linear(cin, 1))
        super().__init__(*layers)


class CategoryDiscriminators(nn.Module):
    """D_c for c in 0..num_categories-1 (or one shared D).

    Args:
        num_categories: categories (the 2D network's classes; only those shared with the 3D bank are trained).
        channels: feature channels C.
        shared: one discriminator for every category.

    Shape:
        features (N, C), category (N,) int64 -> logits (N,).
    """

    def __init__(self, num_categories: int, channels: int, shared: bool = False):
        super().__init__()
        self.shared = shared
        self.nets = nn.ModuleList(FeatureDiscriminator(channels) for _ in range(1 if shared else num_categories))

    def forward(self, features: torch.Tensor, category: torch.Tensor) -> torch.Tensor:
        if self.shared:
            return self.nets[0](features).squeeze(1).float()
        out = features.new_zeros(features.shape[0], dtype=torch.float32)
        for c in torch.unique(category).tolist():
            rows = torch.nonzero(category == c).squeeze(1)
            out = out.index_put((rows,), self.nets[c](features[rows]).squeeze(1).float())  # float32 under autocast
        return out


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Eq. 3: ``−E[log D_c(f_3D)] − E[log(1 − D_c(f_3D_sim))]`` over the sampled features of every category."""
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Eq. 4: ``−E[log D_c(f_3D_sim)]``, pushing simulated features of category c towards c's 3D features."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
