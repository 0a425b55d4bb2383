"""Distill3DModule: 3D-to-2D Distillation for indoor scene parsing (Liu, Qi, Fu, CVPR 2021).

A PSPNet student learns to simulate the features of a frozen 3D teacher (models/pspnet.py). The teacher's
features are precomputed into a per-frame cache (distill/extract.py); the DataModule (data/features.py) adds them to
paired batches and hands over the cache's global feature statistics (DN1) and the per-category feature bank
(unpaired). Paired: L = CE + 0.4 aux + 0.03 L_p. Unpaired: the 2D network and the per-category discriminators are
trained alternately (Eq. 3 / Eq. 4) with Lightning's manual optimisation. Cascade: the depth network of an earlier
stage (methods/cascade_depth.py, ``depth_ckpt``) is loaded and frozen; only the segmentation network learns.
"""

import torch
import torch.nn.functional as F
from torch import nn

from indoor_parsing.io import DataFileError
from indoor_parsing.losses import l1_depth, masked_l2
from indoor_parsing.methods.base import Method
from indoor_parsing.methods.cascade_depth import load_depth_net
from indoor_parsing.models.discriminators import CategoryDiscriminators, discriminator_loss, generator_loss
from indoor_parsing.models.pspnet import PSPNetStudent
from indoor_parsing.training.distributed import detect_unused_parameters


class Distill3DModule(Method):
    """PSPNet student with 3D-to-2D distillation (paired L_p or unpaired semantic-aware adversarial loss).

    Args:
        encoder_name, scheduler_interval: as :class:`~indoor_parsing.methods.base.Method`, with this method's defaults.
        mode: ``distill`` (the method), ``baseline`` (PSPNet), ``multitask`` (depth head instead of the simulated
            3D feature), ``cascade`` (the depth of a frozen, separately trained depth network as an extra input).
        paired: 3D features per frame (L_p) or only a 3D feature bank of another dataset (adversarial).
        norm: ``dn`` or ``bn`` (Table 7: DN replaced by BN).
        shared_discriminator: Table 7's "shared discriminator for all the categories": one D, and real / fake
            features are sampled without matching categories (no labels in the adversarial term).
        depth_ckpt: ``cascade``: checkpoint of the trained :class:`CascadeDepthModule` whose depth network is loaded
            (at fit setup) and frozen.
        feat_channels: teacher feature channels (96 in the paper; checked against the cache).
        bins, decoder_channels, aux: PSPNet settings (pyramid bins, f_2D width, auxiliary head).
        aux_weight: weight of the auxiliary CE (0.4, PSPNet).
        distill_weight: weight of L_p (0.03).
        adv_weight: weight of the 2D network's adversarial loss, Eq. 4 (0.01).
        depth_weight: weight of the depth L1 of ``multitask``.
        adv_samples: simulated features (pixels) sampled per step for the discriminators.
        disc_lr: Adam learning rate of the discriminators.
        eval_scales: test-time scales (e.g. [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]); probabilities are averaged.
        eval_flip: also average the horizontally flipped input.
        **kwargs: the other arguments of :class:`~indoor_parsing.methods.base.Method`.
    """

    def __init__(
        self,
        encoder_name: str = "resnet50",
        mode: str = "distill",
        paired: bool = True,
        norm: str = "dn",
        shared_discriminator: bool = False,
        depth_ckpt: str | None = None,
        feat_channels: int = 96,
        bins: tuple[int, ...] = (1, 2, 3, 6),
        decoder_channels: int = 512,
        aux: bool = True,
        aux_weight: float = 0.4,
        distill_weight: float = 0.03,
        adv_weight: float = 0.01,
        depth_weight: float = 1.0,
        adv_samples: int = 1024,
        disc_lr: float = 1e-4,
        eval_scales: tuple[float, ...] = (1.0,),
        eval_flip: bool = False,
        scheduler_interval: str = "step",
        **kwargs,
    ):
        super().__init__(encoder_name=encoder_name, scheduler_interval=scheduler_interval, **kwargs)
        self.adversarial = mode == "distill" and not paired
        self.automatic_optimization = not self.adversarial
        self.last_d_loss = torch.zeros(())  # the discriminators' loss of the last manual step
        self.required_keys = ("image", "label")
        if mode == "distill" and paired:
            self.required_keys += ("feat3d", "feat3d_mask")
        if mode == "multitask":
            self.required_keys += ("depth",)
        self.discriminators = None
        if self.adversarial:
            self.discriminators = CategoryDiscriminators(self.num_classes, feat_channels, shared=shared_discriminator)
        # Bank of teacher point features (unpaired): rows sorted by 2D class, with per-class [start, end).
        self.register_buffer("bank", torch.zeros(0, feat_channels), persistent=False)
        self.register_buffer("bank_start", torch.zeros(self.num_classes, dtype=torch.long), persistent=False)
        self.register_buffer("bank_count", torch.zeros(self.num_classes, dtype=torch.long), persistent=False)

    def build_model(self) -> nn.Module:
        hp = self.hparams
        return PSPNetStudent(hp.num_classes, hp.encoder_name, hp.encoder_weights, hp.mode, hp.feat_channels, hp.norm,
                             tuple(hp.bins), hp.decoder_channels, hp.aux)  # fmt: skip

    def encoder_parameters(self) -> list[nn.Parameter]:
        return list(self.model.encoder.parameters())  # the cascade's depth network is frozen: no group

    # ---- cache statistics and bank ----------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        super().setup(stage)
        if stage == "fit":
            self.configure_from_datamodule(self.trainer.datamodule)
            if self.hparams.mode == "cascade":
                self.load_depth_net(self.hparams.depth_ckpt)
            if self.adversarial:  # two backward passes per step, each reaching one optimiser's parameters
                detect_unused_parameters(self.trainer)

    def load_depth_net(self, path: str | None) -> None:
        """Cascade: the frozen depth network's weights from the depth stage's checkpoint."""
        if not path:
            raise DataFileError("Distill3DModule(mode='cascade') needs depth_ckpt: train the depth stage first "
                                "(configs/experiments/distill3d_cascade_depth_*.yaml)")  # fmt: skip
        load_depth_net(self.model.depth_net, path, self.hparams.encoder_name)

    def configure_from_datamodule(self, datamodule) -> None:
        """DN1's target statistics (and the unpaired bank) from the DataModule's feature cache."""
        hp = self.hparams
        if hp.mode != "distill":
            return
        stats = datamodule.feature_stats() if hasattr(datamodule, "feature_stats") else None
        if stats is None:
            if hp.norm == "dn" or self.adversarial:
                raise DataFileError("Distill3DModule(mode='distill') needs a DataModule with a feature_cache "
                                    "(data/features.py) for the teacher's statistics")  # fmt: skip
            return
        if stats["channels"] != hp.feat_channels:
            raise DataFileError(f"feature cache has {stats['channels']} channels, model feat_channels is "
                                f"{hp.feat_channels}")  # fmt: skip
        self.model.set_feature_stats(stats["mean"], stats["std"])
        if self.adversarial:
            self.set_bank(*datamodule.feature_bank())

    def set_bank(self, features: torch.Tensor, labels: torch.Tensor, bank_names: list[str]) -> None:
        """Keep the bank rows of categories shared with the 2D classes (matched by name), grouped by 2D class."""
        to_2d = torch.tensor([self.class_names.index(n) if n in self.class_names else -1 for n in bank_names])
        cls = to_2d[labels]  # (M,)
        keep = cls >= 0
        if not keep.any():
            raise DataFileError(f"feature bank classes {bank_names} share no category with {self.class_names}")
        order = torch.argsort(cls[keep], stable=True)
        cls = cls[keep][order]
        count = torch.bincount(cls, minlength=self.num_classes)
        self.bank = features[keep][order].to(self.bank)
        self.bank_count = count.to(self.bank_count.device)
        self.bank_start = (torch.cumsum(count, 0) - count).to(self.bank_start.device)

    # ---- forward / evaluation -----------------------------------------------------------------------------
    def eval_logits(self, batch: dict) -> torch.Tensor:
        """Single scale, or log of the probabilities averaged over ``eval_scales`` x (flip)."""
        image, size = batch["image"], batch["label"].shape[-2:]
        scales, flips = tuple(self.hparams.eval_scales), (False, True) if self.hparams.eval_flip else (False,)
        if scales == (1.0,) and flips == (False,):
            return super().eval_logits(batch)
        prob = 0.0
        for s in scales:
            x = image if s == 1.0 else F.interpolate(image, scale_factor=s, mode="bilinear", align_corners=False)
            for flip in flips:
                logits = self(x.flip(-1) if flip else x)
                logits = logits.flip(-1) if flip else logits
                prob = prob + F.interpolate(logits, size=size, mode="bilinear", align_corners=False).softmax(1)
        return (prob / (len(scales) * len(flips))).clamp_min(1e-8).log()

    # ---- losses -------------------------------------------------------------------------------------------
    def _supervised_terms(self, batch: dict, out: dict) -> dict[str, torch.Tensor]:
        hp = self.hparams
        terms = {"ce": self.cross_entropy(out["logits"], batch["label"])}
        if "aux" in out:
            terms["aux"] = hp.aux_weight * self.cross_entropy(out["aux"], batch["label"])
        if hp.mode == "distill" and hp.paired:
            terms["distill"] = hp.distill_weight * self.distill_loss(out["sim3d"], batch)
        if hp.mode == "multitask":
            terms["depth"] = hp.depth_weight * l1_depth(out["depth"], batch["depth"], batch.get("depth_valid"))
        return terms

    def distill_loss(self, sim3d: torch.Tensor, batch: dict) -> torch.Tensor:
        """L_p = Σ_i ||f_3D,i − f_3D_sim,i||² over covered cells, divided by their number (losses.masked_l2)."""
        target, mask = batch["feat3d"].detach(), batch["feat3d_mask"]  # the frozen teacher's features
        if target.shape[-2:] != sim3d.shape[-2:]:  # a cache of another stride than the student's
            target = F.interpolate(target, size=sim3d.shape[-2:], mode="nearest")
            mask = F.interpolate(mask.float(), size=sim3d.shape[-2:], mode="nearest") > 0.5
        return masked_l2(sim3d, target.to(sim3d), mask)

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        return self._supervised_terms(batch, self.model(batch["image"]))

    # ---- unpaired: alternating 2D network / discriminator steps ----------------------------------------------
    def sample_fake(self, sim3d: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Simulated features of up to ``adv_samples`` cells whose class has bank features: (n, C), (n,).

        Shared discriminator: any cell, labelled or not (the category returned is unused).
        """
        s = self.model.stride
        B, C, h, w = sim3d.shape
        lab = F.pad(label, (0, w * s - label.shape[-1], 0, h * s - label.shape[-2]), value=self.ignore_index)
        lab = lab[:, s // 2 :: s, s // 2 :: s].reshape(-1)  # (B*h*w,) label at each cell centre
        if self.hparams.shared_discriminator:
            valid = torch.ones_like(lab, dtype=torch.bool)
        else:
            valid = lab != self.ignore_index
            valid[valid.clone()] = self.bank_count[lab[valid]] > 0
        rows = torch.nonzero(valid).squeeze(1)
        rows = rows[torch.randperm(rows.numel(), device=rows.device)[: self.hparams.adv_samples]]
        return sim3d.permute(0, 2, 3, 1).reshape(-1, C)[rows], lab[rows]

    def sample_real(self, category: torch.Tensor) -> torch.Tensor:
        """One bank feature of each requested category: (n, C); shared discriminator: n uniform bank rows."""
        if self.hparams.shared_discriminator:
            return self.bank[torch.randint(self.bank.shape[0], category.shape, device=category.device)]
        count = self.bank_count[category]
        offset = (torch.rand(category.shape, device=category.device) * count).long().clamp_max(count - 1)
        return self.bank[self.bank_start[category] + offset]

    def _backward(self, loss: torch.Tensor) -> None:
        if self._trainer is not None:
            self.manual_backward(loss)
        else:  # called outside a Trainer (tests, notebooks)
            loss.backward()

    def generator_step(self, batch: dict, optimizer) -> tuple[dict, torch.Tensor, torch.Tensor]:
        """One update of the 2D network: CE (+ aux) + Eq. 4 with the discriminators frozen."""
        out = self.model(batch["image"])
        terms = self._supervised_terms(batch, out)
        fake, category = self.sample_fake(out["sim3d"], batch["label"])
        if fake.shape[0]:
            self.discriminators.requires_grad_(False)
            terms["adv"] = self.hparams.adv_weight * generator_loss(self.discriminators(fake, category))
            self.discriminators.requires_grad_(True)
        optimizer.zero_grad()
        self._backward(sum(terms.values()))
        optimizer.step()
        return terms, fake.detach(), category

    def discriminator_step(self, fake: torch.Tensor, category: torch.Tensor, optimizer) -> torch.Tensor:
        """One update of the discriminators, Eq. 3: bank features of c real, simulated features of c fake."""
        real = self.sample_real(category)
        loss = discriminator_loss(self.discriminators(real, category), self.discriminators(fake.detach(), category))
        optimizer.zero_grad()
        self._backward(loss)
        optimizer.step()
        return loss.detach()

    def manual_optimization_step(self, batch: dict) -> dict[str, torch.Tensor]:
        """Unpaired: one 2D-network update, then one discriminator update; the 2D network's terms (``train/d_loss``
        is logged by ``training_logs``)."""
        opt_g, opt_d = self.optimizers()
        # One training step is one batch: only the 2D network's update advances trainer.global_step. Lightning
        # counts every manual optimizer.step() (Lightning issue #17958), which would halve max_steps, the
        # logging / validation / checkpoint intervals and a step budget shared with automatic-optimisation methods.
        opt_d._on_before_step = opt_d._on_after_step = _no_count
        terms, fake, category = self.generator_step(batch, opt_g)
        d_loss = self.discriminator_step(fake, category, opt_d) if fake.shape[0] else torch.zeros(())
        scheduler = self.lr_schedulers()
        if scheduler is not None and self.hparams.scheduler_interval == "step":
            scheduler.step()
        self.last_d_loss = d_loss
        return terms

    def training_logs(self, terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self.automatic_optimization:
            return super().training_logs(terms)
        return {f"train/{k}": v.detach() for k, v in terms.items()} | {"train/d_loss": self.last_d_loss}

    def on_train_epoch_end(self) -> None:
        scheduler = self.lr_schedulers() if not self.automatic_optimization else None
        if scheduler is not None and self.hparams.scheduler_interval == "epoch":
            scheduler.step()

    # ---- optimisation -----------------------------------------------------------------------------------
    def param_groups(self) -> list[dict]:
        """The base groups without the discriminators (they have their own optimiser)."""
        disc = {id(p) for p in self.discriminators.parameters()} if self.discriminators is not None else set()
        groups = super().param_groups()
        for g in groups:
            g["params"] = [p for p in g["params"] if id(p) not in disc]
        return groups

    def configure_optimizers(self):
        config = super().configure_optimizers()
        if not self.adversarial:
            return config
        config = config if isinstance(config, dict) else {"optimizer": config}
        disc = torch.optim.Adam(self.discriminators.parameters(), lr=self.hparams.disc_lr, betas=(0.9, 0.99))
        return [config, {"optimizer": disc}]


def _no_count() -> None:
    """Replaces Lightning's step-counting hooks on the discriminators' optimiser (see manual_optimization_step)."""
