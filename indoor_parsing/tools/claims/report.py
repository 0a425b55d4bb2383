"""The claims report: mean ± std over seeds per arm, the raw per-run numbers (CSV) and a bar chart (PNG)."""

import csv
import io
import json
import platform
import subprocess
from collections import defaultdict
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import numpy as np
from scipy import stats

from indoor_parsing.io import atomic_path, write_text

METRICS = ("pixel_acc", "mean_acc", "mIoU", "fwIoU")


def git_commit() -> str:
    """The package's commit, ``-dirty`` when its tree has uncommitted changes."""
    repo = Path(__file__).resolve().parents[3]
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=7"], cwd=repo,
                             capture_output=True, text=True, check=True)  # fmt: skip
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _rows(records: list[dict]) -> list[dict]:
    rows = []
    for r in records:
        for eval_set, metrics in r["results"].items():
            rows.append({"comparison": r["comparison"], "arm": r["arm"], "eval_set": eval_set, "seed": r["seed"],
                         "steps": r["steps"], "seconds": r["seconds"], "report": r.get("report", True),
                         **{m: metrics[m] for m in METRICS}})  # fmt: skip
    return rows


def summarise(rows: list[dict]) -> dict:
    """(comparison, arm, eval_set) -> {metric: (mean, std, n)} in percent, std with ddof=1."""
    groups = defaultdict(list)
    for row in rows:
        if row["report"]:
            groups[(row["comparison"], row["arm"], row["eval_set"])].append(row)
    out = {}
    for key, group in groups.items():
        out[key] = {}
        for m in METRICS:
            values = 100 * np.asarray([g[m] for g in group])
            std = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
            out[key][m] = (float(values.mean()), std, len(values))
    return out


def welch(a: dict, b: dict) -> tuple[float, float, float]:
    """mIoU difference a - b in points, its standard error and Welch's two-sided p (nan with fewer than 2 seeds)."""
    (ma, sa, na), (mb, sb, nb) = a["mIoU"], b["mIoU"]
    d = ma - mb
    if na < 2 or nb < 2:
        return d, float("nan"), float("nan")
    se = float(np.sqrt(sa**2 / na + sb**2 / nb))
    if se == 0.0:  # identical runs per arm: scipy would return nan
        return d, 0.0, 0.0 if d != 0 else 1.0
    return d, se, float(stats.ttest_ind_from_stats(ma, sa, na, mb, sb, nb, equal_var=False).pvalue)


def paired(a: dict[int, float], b: dict[int, float]) -> tuple[float, float, float]:
    """Mean per-seed mIoU difference a - b in points (seeds both have), its standard error and the paired t-test's
    two-sided p: for arms that share each seed's starting weights (nan with fewer than 2 common seeds)."""
    seeds = sorted(set(a) & set(b))
    diff = 100 * np.asarray([a[s] - b[s] for s in seeds])
    if len(diff) < 2:
        return (float(diff.mean()) if len(diff) else float("nan")), float("nan"), float("nan")
    se = float(diff.std(ddof=1) / np.sqrt(len(diff)))
    if se == 0.0:
        return float(diff.mean()), 0.0, 0.0 if diff.mean() != 0 else 1.0
    return float(diff.mean()), se, float(stats.ttest_rel(100 * np.asarray([a[s] for s in seeds]),
                                                         100 * np.asarray([b[s] for s in seeds])).pvalue)  # fmt: skip


def _verdict(d: float, p: float, test: str, alpha: float = 0.05) -> str:
    if not np.isfinite(p):
        return "inconclusive: one seed"
    if p >= alpha:
        return f"not distinguishable from seed noise ({test} p = {p:.2f})"
    return f"{'holds' if d > 0 else 'reversed'} ({test} p = {p:.3f})"


def _per_seed(rows: list[dict]) -> dict:
    """(comparison, arm, eval_set) -> {seed: mIoU}."""
    out = defaultdict(dict)
    for row in rows:
        out[(row["comparison"], row["arm"], row["eval_set"])][row["seed"]] = row["mIoU"]
    return out


def _keys(summary: dict, comp) -> list[tuple[str, str, str]]:
    """The comparison's (comparison, arm, eval set) keys in the plan's arm order."""
    order = {arm.name: i for i, arm in enumerate(comp.arms)}
    return sorted((k for k in summary if k[0] == comp.name), key=lambda k: (order.get(k[1], len(order)), k[1], k[2]))


def _table(summary: dict, per_seed: dict, comp) -> tuple[str, list[str]]:
    keys = _keys(summary, comp)
    lines = [
        "| arm | eval set | pixel acc | mean acc | mIoU | fwIoU | Δ mIoU vs baseline (± s.e.) |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, arm, eval_set in keys:
        s = summary[(comp.name, arm, eval_set)]
        baseline = comp.baseline_of(arm)
        base = summary.get((comp.name, baseline, eval_set))
        delta = ""
        if base is not None and arm not in comp.baselines:
            d, se, _ = welch(s, base)
            delta = f"{d:+.2f} ± {se:.2f} vs {baseline}"
        cells = " | ".join(f"{s[m][0]:.2f} ± {s[m][1]:.2f}" for m in METRICS)
        lines.append(f"| {arm} | {eval_set} | {cells} | {delta} |")
    findings = []
    for better, worse in comp.claims:
        for eval_set in sorted({k[2] for k in keys if k[1] == better} & {k[2] for k in keys if k[1] == worse}):
            a, b = (comp.name, better, eval_set), (comp.name, worse, eval_set)
            d, se, p = welch(summary[a], summary[b])
            if comp.paired_seeds:
                d, se, p_paired = paired(per_seed[a], per_seed[b])
                verdict = f"{_verdict(d, p_paired, 'paired t-test over seeds')}; Welch p = {p:.2f}"
            else:
                verdict = _verdict(d, p, "Welch")
            findings.append(f"- paper: {better} > {worse}. Here on {eval_set}: {d:+.2f} ± {se:.2f} mIoU points; "
                            f"{verdict}.")  # fmt: skip
    return "\n".join(lines), findings


def _settings(records: list[dict], comparison: str) -> list[str]:
    """The distinct SynthRooms generation settings a comparison's runs used, one line each."""
    seen = {}
    for r in records:
        if r["comparison"] == comparison and r.get("data"):
            seen.setdefault(json.dumps(r["data"].get("settings"), sort_keys=True), []).append(r["arm"])
    return [f"- {', '.join(dict.fromkeys(arms))}:<br>`{settings}`" for settings, arms in seen.items()]


def _chart(summary: dict, comparisons: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(comparisons), figsize=(5 * len(comparisons), 4), squeeze=False)
    for ax, comp in zip(axes[0], comparisons, strict=True):
        keys = _keys(summary, comp)
        labels = [k[1] if k[2] == "test" else f"{k[1]}\n[{k[2]}]" for k in keys]
        means = [summary[k]["mIoU"][0] for k in keys]
        stds = [np.nan_to_num(summary[k]["mIoU"][1]) for k in keys]
        colours = ["tab:gray" if k[1] in comp.baselines else "tab:blue" for k in keys]
        ax.bar(range(len(keys)), means, yerr=stds, capsize=4, color=colours)
        ax.set_xticks(range(len(keys)), labels, rotation=35, ha="right", fontsize=8)
        ax.set_ylabel("mIoU (%)")
        ax.set_title(f"{comp.name} (grey: baselines)", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def _teacher_line(teacher: dict) -> str:
    test = teacher.get("results", {}).get("test")
    scores = ", ".join(f"{m} {100 * test[m]:.2f}" for m in METRICS) if test else "not tested"
    fit = f"{teacher['fit_seconds'] / 60:.1f} min" if "fit_seconds" in teacher else "time not recorded"
    return (f"3D teacher ({teacher.get('config', '?')}, {teacher.get('steps', '?')} steps, {fit}, trained at "
            f"`{teacher.get('commit', 'unrecorded')}`), point-level scores on the source test rooms: "
            f"{scores}.")  # fmt: skip


def write_report(
    records: list[dict], out: Path, seeds: list[int], budget: float, teacher: dict | None = None
) -> list[Path]:
    from indoor_parsing.tools.claims.plan import COMPARISONS

    out = Path(out)
    rows = _rows(records)
    summary, per_seed = summarise(rows), _per_seed(rows)
    comps = [c for c in COMPARISONS if any(k[0] == c.name for k in summary)]
    versions = ", ".join(f"{p} {version(p)}" for p in ("indoor-parsing", "torch", "lightning",
                                                         "segmentation-models-pytorch"))  # fmt: skip
    commits = sorted({r.get("commit", "unrecorded") for r in records})
    total = sum(r["seconds"] for r in records)
    total += sum((teacher or {}).get(k, 0.0) for k in ("fit_seconds", "extract_seconds"))
    md = [
        "# Claims check on SynthRooms",
        "",
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `indoor-parsing claims` at commit "
        f"`{git_commit()}`; runs trained at {', '.join(f'`{c}`' for c in commits)} ({versions}; Python "
        f"{platform.python_version()}). Seeds {seeds}, budget x{budget}, {total / 60:.0f} min of training and testing "
        "in all (the teacher included). Numbers are percent, mean ± std over seeds (ddof=1); a difference's ± is its "
        "standard error. A two-sided t-test at 5% decides whether a paper's direction holds, is reversed, or is "
        "not distinguishable from seed-to-seed noise: Welch's test over seeds, or, where arms start from the same "
        "weights for each seed (S4-Net's adaptation arms), the paired test over seeds, with Welch's p given too.",
        "",
        "Equal budgets: within a comparison every arm uses the same generated data, input size, encoder and number "
        "of training steps (S4-Net's adaptation arms all start from the same source-stage weights of their seed); "
        "the final weights are tested (no checkpoint selection). The SynthRooms generation settings were fixed in "
        "the configs before this ran and were not tuned for any method.",
        "",
    ]
    for comp in comps:
        table, findings = _table(summary, per_seed, comp)
        teacher_lines = [_teacher_line(teacher), ""] if comp.needs_teacher and teacher else []
        md += [f"## {comp.name} ({comp.paper_table})", "", comp.note, "", *teacher_lines, table, "", *findings, "",
               "<details><summary>SynthRooms generation settings</summary>", "", *_settings(records, comp.name), "",
               "</details>", ""]  # fmt: skip
    md += ["![mIoU per arm](claims.png)", "", "Raw per-run numbers: [claims.csv](claims.csv)."]
    _chart(summary, comps, out / "claims.png")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["comparison"])
    writer.writeheader()
    writer.writerows(rows)
    write_text(out / "claims.csv", buf.getvalue())
    write_text(out / "claims.md", "\n".join(md) + "\n")
    return [out / "claims.md", out / "claims.csv", out / "claims.png"]
