"""The claims report: mean ± std over seeds per arm, the raw per-run numbers (CSV) and a bar chart (PNG)."""

import csv
import io
import json
import platform
import subprocess
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import numpy as np

from indoor_parsing.io import atomic_path, write_text
from indoor_parsing.tools.claims.plan import BUDGET_NOTE
from indoor_parsing.tools.claims.stats import mde, paired, welch

METRICS = ("pixel_acc", "mean_acc", "mIoU", "fwIoU")


def git_commit(repo: Path) -> str:
    """The checkout's commit (``repo``: any folder inside it), ``-dirty`` when its tree has uncommitted changes."""
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


def _delta(per_seed: dict, a: tuple, b: tuple, paired_seeds: bool) -> tuple[float, float, float, float, str]:
    """Effect a - b in points, its s.e., p, df and the test's name."""
    if paired_seeds:
        pa = {s: 100 * v for s, v in per_seed[a].items()}
        pb = {s: 100 * v for s, v in per_seed[b].items()}
        return (*paired(pa, pb), "paired t")
    return (*welch([100 * v for v in per_seed[a].values()], [100 * v for v in per_seed[b].values()]), "Welch")


@dataclass(frozen=True)
class ClaimStat:
    """One paper claim on one evaluation set, measured: effect (points), s.e., p, df, MDE and the paper's gain
    scaled to our baseline (``expected``: its relative gain times our baseline mIoU; nan without a paper figure)."""

    claim: object
    eval_set: str
    effect: float
    se: float
    p: float
    df: float
    test: str
    mde: float
    seeds: str  # as printed
    baseline_miou: float
    expected: float

    @property
    def underpowered(self) -> bool:
        """The measured spread could not detect the paper's gain at our baseline (or cannot be measured yet)."""
        return not (np.isfinite(self.mde) and np.isfinite(self.expected) and self.mde <= self.expected)


def claim_stats(summary: dict, per_seed: dict, comp) -> list[ClaimStat]:
    """Every claim of ``comp`` on every evaluation set both of its arms were tested on."""
    keys, out = _keys(summary, comp), []
    for claim in comp.claims:
        shared = {k[2] for k in keys if k[1] == claim.better} & {k[2] for k in keys if k[1] == claim.worse}
        for eval_set in sorted(shared if claim.eval_sets is None else shared & set(claim.eval_sets)):
            a, b = (comp.name, claim.better, eval_set), (comp.name, claim.worse, eval_set)
            d, se, p, df, test = _delta(per_seed, a, b, comp.paired_seeds)
            sa, sb = sorted(per_seed[a]), sorted(per_seed[b])
            # The seeds the test used: the shared ones when paired; else each arm's own, named when they differ.
            seeds = (str(sorted(set(sa) & set(sb))) if comp.paired_seeds or sa == sb
                     else f"{claim.better} {sa}, {claim.worse} {sb}")  # fmt: skip
            base = summary[b]["mIoU"][0]
            expected = claim.paper.relative * base if claim.paper is not None else float("nan")
            out.append(ClaimStat(claim, eval_set, d, se, p, df, test, mde(se, df), seeds, base, expected))
    return out


def underpowered(records: list[dict], comp) -> bool:
    """True when some claim of ``comp`` cannot detect the paper's gain at our baseline with these records' seeds
    (the claims check then adds seeds to this comparison); also when a claim has no measurement yet."""
    rows = [r for r in _rows(records) if r["comparison"] == comp.name]
    stats_ = claim_stats(summarise(rows), _per_seed(rows), comp)
    return not stats_ or any(c.underpowered for c in stats_)


def _table(summary: dict, per_seed: dict, comp) -> tuple[str, list[str]]:
    keys = _keys(summary, comp)
    lines = [
        "| arm | eval set | pixel acc | mean acc | mIoU | fwIoU | Δ mIoU vs baseline (± s.e.) |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, arm, eval_set in keys:
        s = summary[(comp.name, arm, eval_set)]
        baseline = comp.baseline_of(arm)
        delta = ""
        if (comp.name, baseline, eval_set) in summary and arm not in comp.baselines:
            d, se, *_ = _delta(per_seed, (comp.name, arm, eval_set), (comp.name, baseline, eval_set), False)
            delta = f"{d:+.2f} ± {se:.2f} vs {baseline}"
        cells = " | ".join(f"{s[m][0]:.2f} ± {s[m][1]:.2f}" for m in METRICS)
        lines.append(f"| {arm} | {eval_set} | {cells} | {delta} |")
    claims = [
        "| paper claim | eval set | seeds | baseline mIoU | effect ± s.e. | test, p | MDE (80 %, 5 %) | paper gain "
        "(relative) | paper gain at our baseline | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    findings = []
    for c in claim_stats(summary, per_seed, comp):
        claim, d, se, p, m, base = c.claim, c.effect, c.se, c.p, c.mde, c.baseline_miou
        gain, flags = "not entered", []
        if claim.paper is not None:
            g = claim.paper
            gain = f"{g.points:+.1f} ({100 * g.relative:+.1f} %; {g.table}{'' if g.verified else ', unverified'})"
        if c.underpowered:
            flags.append("**MDE exceeds the paper's gain: underpowered**" if np.isfinite(m) else "MDE needs 2+ seeds")
        if base < 25.0:
            flags.append("**baseline below 25 % mIoU**")
        verdict = _verdict(d, p, c.test)
        claims.append(f"| {claim.better} > {claim.worse} | {c.eval_set} | {c.seeds} | {base:.2f} | {d:+.2f} ± "
                      f"{se:.2f} | {c.test}, p = {p:.3f} | {m:.2f} | {gain} | {c.expected:+.2f} | "
                      f"{'; '.join([verdict, *flags])} |")  # fmt: skip
        findings.append(f"- paper: {claim.better} > {claim.worse}. Here on {c.eval_set}: {d:+.2f} ± {se:.2f} mIoU "
                        f"points; {verdict}; MDE {m:.2f} points.")  # fmt: skip
    if len(claims) > 2:
        findings = ["", *claims, "", *findings]
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


def _teacher_vs_student(teacher: dict, summary: dict, comp) -> str:
    test = teacher.get("results", {}).get("test")
    students = [f"{k[1]} {summary[k]['mIoU'][0]:.2f}" for k in _keys(summary, comp) if k[2] == "test"]
    t = f"{100 * test['mIoU']:.2f}" if test else "not tested"
    return (
        f"Teacher point mIoU {t} (source test rooms) next to the students' pixel mIoU on test: {', '.join(students)}."
    )


def _trainings(records: list[dict]) -> list[dict]:
    """One record per training: an arm reused by another comparison (same fingerprint) ran, and is timed, once."""
    seen, out = set(), []
    for r in records:
        key = r.get("fingerprint") or id(r)
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def write_report(
    records: list[dict], out: Path, seeds: list[int], budget: float, teacher: dict | None = None,
    commit: str = "unknown", data_options: str = "none", comparisons: tuple | None = None,
) -> list[Path]:  # fmt: skip
    """``data_options``: the ``--data-seed`` / ``--synthrooms`` options the runs were made with."""
    if comparisons is None:
        from indoor_parsing.tools.claims.plan import COMPARISONS as comparisons

    out = Path(out)
    rows = _rows(records)
    summary, per_seed = summarise(rows), _per_seed(rows)
    comps = [c for c in comparisons if any(k[0] == c.name for k in summary)]
    versions = ", ".join(f"{p} {version(p)}" for p in ("indoor-parsing", "torch", "lightning",
                                                         "segmentation-models-pytorch"))  # fmt: skip
    commits = sorted({r.get("commit", "unrecorded") for r in records})
    precisions = ", ".join(sorted({r.get("precision", "32-true") for r in records}))  # unrecorded: fp32 (CPU)
    layout = [bool(r.get("channels_last")) for r in records]
    precisions += ", channels_last" if all(layout) else ", channels_last in part" if any(layout) else ""
    trained = _trainings(records)
    total = sum(r["seconds"] for r in trained)
    total += sum((teacher or {}).get(k, 0.0) for k in ("fit_seconds", "extract_seconds"))
    fit = sum(r.get("fit_seconds", r["seconds"]) for r in trained) + (teacher or {}).get("fit_seconds", 0.0)
    md = [
        "# Claims check on SynthRooms",
        "",
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `indoor-parsing claims` at commit "
        f"`{commit}`; runs trained at {', '.join(f'`{c}`' for c in commits)} ({versions}; Python "
        f"{platform.python_version()}). Seeds {seeds}, budget x{budget}, {total / 60:.0f} min of training and testing "
        f"in all (the teacher included); total CPU time (sum of fit seconds, each training once) {fit / 60:.1f} min. "
        f"Trainer precision {precisions}. SynthRooms options: {data_options}. Numbers are percent, mean ± std over "
        "seeds (ddof=1); a difference's ± is its standard error. A two-sided t-test at 5% decides whether a paper's "
        "direction holds, is reversed, or is not distinguishable from seed-to-seed noise: Welch's test over seeds, "
        "or, where arms start from the same weights for each seed (S4-Net's adaptation arms), the paired test over "
        "seeds, with Welch's p given too.",
        "",
        "Equal budgets: within a comparison every arm uses the same generated data, input size, encoder and number "
        "of training steps (S4-Net's adaptation arms all start from the same source-stage weights of their seed); "
        "the final weights are tested (no checkpoint selection). The SynthRooms generation settings were fixed in "
        "the configs before this ran and were not tuned for any method.",
        "",
        BUDGET_NOTE,
        "",
    ]
    for comp in comps:
        table, findings = _table(summary, per_seed, comp)
        teacher_lines = ([_teacher_line(teacher), "", _teacher_vs_student(teacher, summary, comp), ""]
                         if comp.needs_teacher and teacher else [])  # fmt: skip
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
