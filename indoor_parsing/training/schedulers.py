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


class StepFractionLR(LambdaLR):
    """Step decay at fractions of the run: lr = lr0 · gamma^(number of milestones passed), a milestone m at step
    m · T. The CPU-sized GeoAware recipe divides by 10 at 3/4 of the run, whatever its length (an epoch-based
    ``StepLR`` tuned for 8 epochs would decay 10x every 6 epochs of a longer run and stall it).

    Args:
        optimizer: the optimiser.
        milestones: fractions of T in (0, 1), ascending.
        gamma: the factor at each milestone.
        total_steps: T; None lets the method fill in the trainer's estimated stepping batches.
    """

    def __init__(self, optimizer: Optimizer, milestones: tuple[float, ...] = (0.75,), gamma: float = 0.1,
                 total_steps: int | None = None):  # fmt: skip
        if any(not 0 < m < 1 for m in milestones) or list(milestones) != sorted(milestones):
            raise ValueError(f"milestones must be ascending fractions in (0, 1), got {milestones}")
        self.milestones, self.gamma, self.total_steps = tuple(milestones), gamma, total_steps
        super().__init__(optimizer, self._factor)

    def _factor(self, step: int) -> float:
        if not self.total_steps:
            return 1.0
        return self.gamma ** sum(step >= round(m * self.total_steps) for m in self.milestones)
