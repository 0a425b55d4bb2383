"""The claims report: mean ± std over seeds per arm, the raw per-run numbers (CSV) and a bar chart (PNG)."""

import csv
import io
import platform
import subprocess
from collections import defaultdict
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import numpy as np

from indoor_parsing.io import atomic_path, write_text

METRICS = ("pixel_acc", "mean_acc", "mIoU", "fwIoU")


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
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


def _table(summary: dict, comparison: str, baseline: str) -> tuple[str, list[str]]:
    keys = [k for k in summary if k[0] == comparison]
    lines = [
        "| arm | eval set | pixel acc | mean acc | mIoU | fwIoU | Δ mIoU vs baseline |",
        "|---|---|---|---|---|---|---|",
    ]
    findings = []
    for _, arm, eval_set in keys:
        s = summary[(comparison, arm, eval_set)]
        base = summary.get((comparison, baseline, eval_set))
        delta = ""
        if base is not None and arm != baseline:
            d = s["mIoU"][0] - base["mIoU"][0]
            spread = max(s["mIoU"][1], base["mIoU"][1])
            delta = f"{d:+.2f}"
            verdict = "within the seed spread" if not np.isfinite(spread) or abs(d) <= spread else (
                "better" if d > 0 else "worse")  # fmt: skip
            findings.append(f"- {arm} vs {baseline} on {eval_set}: {d:+.2f} mIoU points ({verdict}; "
                            f"largest seed std {spread:.2f}).")  # fmt: skip
        cells = " | ".join(f"{s[m][0]:.2f} ± {s[m][1]:.2f}" for m in METRICS)
        lines.append(f"| {arm} | {eval_set} | {cells} | {delta} |")
    return "\n".join(lines), findings


def _chart(summary: dict, comparisons: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(comparisons), figsize=(5 * len(comparisons), 4), squeeze=False)
    for ax, comp in zip(axes[0], comparisons, strict=True):
        keys = [k for k in summary if k[0] == comp]
        labels = [k[1] if k[2] == "test" else f"{k[1]}\n[{k[2]}]" for k in keys]
        means = [summary[k]["mIoU"][0] for k in keys]
        stds = [np.nan_to_num(summary[k]["mIoU"][1]) for k in keys]
        ax.bar(range(len(keys)), means, yerr=stds, capsize=4, color="tab:blue")
        ax.set_xticks(range(len(keys)), labels, rotation=35, ha="right", fontsize=8)
        ax.set_ylabel("mIoU (%)")
        ax.set_title(comp)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def write_report(records: list[dict], out: Path, seeds: list[int], budget: float) -> list[Path]:
    from indoor_parsing.claims.plan import COMPARISONS

    out = Path(out)
    rows = _rows(records)
    summary = summarise(rows)
    comps = [c for c in COMPARISONS if any(k[0] == c.name for k in summary)]
    data = next((r["data"] for r in records if r.get("data")), {})
    versions = ", ".join(f"{p} {version(p)}" for p in ("indoor-parsing", "torch", "lightning",
                                                         "segmentation-models-pytorch"))  # fmt: skip
    total = sum(r["seconds"] for r in records)
    md = [
        "# Claims check on SynthRooms",
        "",
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `indoor-parsing claims` at commit "
        f"`{_git_commit()}` ({versions}; Python {platform.python_version()}). Seeds {seeds}, budget x{budget}, "
        f"{total / 60:.0f} min of training and testing in all. Numbers are percent, mean ± std over seeds (ddof=1).",
        "",
        "Equal budgets: within a comparison every arm uses the same generated data, input size, encoder and number "
        "of training steps; the final weights are tested (no checkpoint selection). SynthRooms settings were fixed "
        f"in the configs before this ran: `{data.get('settings', 'see configs')}`.",
        "",
    ]
    for comp in comps:
        table, findings = _table(summary, comp.name, comp.baseline)
        md += [f"## {comp.name} ({comp.paper_table})", "", table, "", *findings, ""]
    md += ["![mIoU per arm](claims.png)", "", "Raw per-run numbers: [claims.csv](claims.csv)."]
    _chart(summary, [c.name for c in comps], out / "claims.png")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["comparison"])
    writer.writeheader()
    writer.writerows(rows)
    write_text(out / "claims.csv", buf.getvalue())
    write_text(out / "claims.md", "\n".join(md) + "\n")
    return [out / "claims.md", out / "claims.csv", out / "claims.png"]
