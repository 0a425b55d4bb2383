"""Learning-rate schedules the papers use that torch does not ship ready to configure."""

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


class PolyLR(LambdaLR):
    """Poly decay lr = lr0 · (1 − t / T)^power, stepped per iteration (PSPNet / 3D-to-2D recipe).

    Args:
        optimizer: the optimiser.
        power: decay power (0.9 in the papers).
        total_steps: T; None lets the method fill in the trainer's estimated stepping batches.
    """

    def __init__(self, optimizer: Optimizer, power: float = 0.9, total_steps: int | None = None):
        self.power = power
        self.total_steps = total_steps
        super().__init__(optimizer, self._factor)

    def _factor(self, step: int) -> float:
        if not self.total_steps:
            return 1.0
        return max(0.0, 1.0 - min(step, self.total_steps) / self.total_steps) ** self.power
