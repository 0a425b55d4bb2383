"""The base test every method runs: forward/backward, odd sizes, switches, checkpoint round trip."""

import lightning as L
import torch

from tests.helpers import make_batch


def check_forward_backward(module: L.LightningModule, batch: dict) -> dict[str, torch.Tensor]:
    """One loss evaluation + backward; every trainable parameter that should learn gets a finite gradient."""
    module.train()
    terms = module.losses(batch)
    loss = sum(terms.values())
    assert torch.isfinite(loss), terms
    loss.backward()
    grads = [p.grad for p in module.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    assert all(torch.isfinite(g).all() for g in grads if g is not None)
    module.zero_grad()
    return terms


def check_odd_sizes(module: L.LightningModule, num_classes: int, sizes=((37, 53), (61, 45))) -> None:
    module.eval()
    with torch.no_grad():
        for H, W in sizes:
            out = module(torch.randn(1, 3, H, W))
            assert out.shape == (1, num_classes, H, W), out.shape


def check_checkpoint_round_trip(module: L.LightningModule, cls, tmp_path, batch: dict | None = None) -> None:
    """Save with a Trainer, load with ``cls.load_from_checkpoint``: same hyper-parameters, same outputs."""
    batch = batch or make_batch(1, 32, 48)
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, max_epochs=0)
    trainer.strategy.connect(module)
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    loaded = cls.load_from_checkpoint(path)
    module.eval()
    loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(module(batch["image"]), loaded(batch["image"]))
    assert dict(loaded.hparams) == dict(module.hparams)
