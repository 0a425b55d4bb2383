"""``last.ckpt`` is the latest state at every save point, also when the monitored metric stopped improving."""

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from indoor_parsing.training.callbacks import BestAndLastCheckpoint


class Worsening(L.LightningModule):
    """A linear model whose logged ``val/mIoU`` gets worse every epoch."""

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        self.log("val/mIoU", 1.0 / (1 + self.current_epoch))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_last_checkpoint_follows_training_when_best_does_not(tmp_path):
    loader = DataLoader(TensorDataset(torch.randn(4, 2)), batch_size=2)
    ckpt = BestAndLastCheckpoint(dirpath=tmp_path, filename="best", monitor="val/mIoU", mode="max", save_last=True)
    trainer = L.Trainer(max_epochs=3, callbacks=[ckpt], logger=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0)  # fmt: skip
    trainer.fit(Worsening(), loader, loader)
    best = torch.load(tmp_path / "best.ckpt", weights_only=False)
    last = torch.load(tmp_path / "last.ckpt", weights_only=False)
    assert (best["epoch"], best["global_step"]) == (0, 2)
    assert (last["epoch"], last["global_step"]) == (2, 6)  # Lightning 2.6's own ModelCheckpoint leaves (0, 2)
