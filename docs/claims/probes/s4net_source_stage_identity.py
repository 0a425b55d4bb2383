"""Probe (session 20): are the S4-Net source stages retrained in session 19 the ones room 0 was adapted from?

    python docs/claims/probes/s4net_source_stage_identity.py --out /tmp/s4net_identity 1 2 3 4

Room 0's "source only" arm of each given seed is trained again, in a scratch ``--out``, from the source-stage
checkpoint now under docs/claims/runs (the source-stage record is copied, the checkpoint linked), and its scores are
printed next to the committed record's, made in session 18 from the original source stage. Equal scores to the
last digit mean equal starting weights. Results: docs/claims/README.md, "Session 20".
"""

import argparse
import json
import shutil
from pathlib import Path

import indoor_parsing  # noqa: F401  (the torchvision guard runs first)
from indoor_parsing.tools.claims import records as rec
from indoor_parsing.tools.claims import run as claims_run
from indoor_parsing.tools.claims.plan import S4NET

COMMITTED = Path("docs/claims")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("seeds", type=int, nargs="+")
    a = p.parse_args()
    stage, source_only = (next(arm for arm in S4NET.arms if arm.name == n) for n in ("source stage", "source only"))
    (a.out / "records").mkdir(parents=True, exist_ok=True)
    (a.out / "runs").mkdir(exist_ok=True)
    options = ["--out", str(a.out), "--only", "S4-Net"]
    runner = claims_run.Runner(claims_run.parse_args(options))
    lookup = claims_run.Runner(claims_run.parse_args([*options, "--report-only"]))  # matches records, trains nothing
    for seed in a.seeds:
        name = rec.run_name(S4NET.name, stage.name, seed)
        shutil.copy(COMMITTED / "records" / f"{name}.json", a.out / "records" / f"{name}.json")
        link = a.out / "runs" / name
        if not link.exists():
            link.symlink_to((COMMITTED / "runs" / name).resolve())
        record = lookup.arm(S4NET, stage, seed)
        if record is None:
            raise SystemExit(f"{name}: the committed record does not match the current settings")
        runner.done[(S4NET.name, stage.name, seed)] = record
        new = runner.arm(S4NET, source_only, seed)
        committed = COMMITTED / "records" / f"{rec.run_name(S4NET.name, source_only.name, seed)}.json"
        old = json.loads(committed.read_text())
        for ev in sorted(old["results"]):
            o, n = old["results"][ev], new["results"][ev]
            print(f"seed {seed} {ev}: committed mIoU {100 * o['mIoU']:.4f}, rerun {100 * n['mIoU']:.4f}; "
                  f"same fingerprint {new['fingerprint'] == old['fingerprint']}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
