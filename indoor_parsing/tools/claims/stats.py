"""Claim statistics: effect ± s.e., two-sided t-test p and the minimum detectable effect (MDE).

MDE at 80 % power, two-sided 5 %, from the measured seed spread:

    MDE = (t_{0.975, df} + t_{0.80, df}) * s.e.

with s.e. the standard error of the difference: sqrt(s_a² / n_a + s_b² / n_b) and the Welch-Satterthwaite
df = (s_a²/n_a + s_b²/n_b)² / ((s_a²/n_a)² / (n_a - 1) + (s_b²/n_b)² / (n_b - 1)) for independent seeds (Welch);
s_d / sqrt(n) and df = n - 1 over the per-seed differences d when both arms of a seed start from the same weights
(paired). A true effect of MDE points is detected with probability 0.8 at the same spread and seeds.
"""

import numpy as np
from scipy import stats

ALPHA, POWER = 0.05, 0.80


def mde(se: float, df: float) -> float:
    """Minimum detectable effect (points) at 80 % power, two-sided 5 % (nan without a finite s.e. and df)."""
    if not (np.isfinite(se) and np.isfinite(df)) or df <= 0:
        return float("nan")
    return float((stats.t.ppf(1 - ALPHA / 2, df) + stats.t.ppf(POWER, df)) * se)


def welch(a: list[float], b: list[float]) -> tuple[float, float, float, float]:
    """Mean difference a - b, its s.e., Welch's two-sided p and the Welch-Satterthwaite df (nan below 2 each)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    d = float(a.mean() - b.mean()) if len(a) and len(b) else float("nan")
    if len(a) < 2 or len(b) < 2:
        return d, float("nan"), float("nan"), float("nan")
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = float(np.sqrt(va + vb))
    if se == 0.0:  # identical runs per arm: scipy would return nan
        return d, 0.0, (0.0 if d != 0 else 1.0), float(len(a) + len(b) - 2)
    df = float((va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)))
    return d, se, float(stats.ttest_ind(a, b, equal_var=False).pvalue), df


def paired(a: dict[int, float], b: dict[int, float]) -> tuple[float, float, float, float]:
    """Mean per-seed difference a - b over the seeds both have, its s.e., the paired t-test's p and df = n - 1."""
    seeds = sorted(set(a) & set(b))
    diff = np.asarray([a[s] - b[s] for s in seeds], float)
    if len(diff) < 2:
        return (float(diff.mean()) if len(diff) else float("nan")), float("nan"), float("nan"), float("nan")
    se = float(diff.std(ddof=1) / np.sqrt(len(diff)))
    if se == 0.0:
        return float(diff.mean()), 0.0, (0.0 if diff.mean() != 0 else 1.0), float(len(diff) - 1)
    p = float(stats.ttest_rel([a[s] for s in seeds], [b[s] for s in seeds]).pvalue)
    return float(diff.mean()), se, p, float(len(diff) - 1)
