"""Probe (session 20): do claims arms trained in bf16-mixed on the CPU score like their committed fp32 records?

    python docs/claims/probes/bf16_probe.py --out /tmp/bf16_probe --seed 0
    python docs/claims/probes/bf16_probe.py --out /tmp/bf16_probe --seed 1 --arms PSPNet

Trains seed ``--seed`` of GeoAware's sem-only and full rows and of Distill3D's PSPNet and DN rows (or ``--arms``) with
``indoor-parsing claims --precision bf16-mixed`` settings into ``--out`` (the 3D teacher's committed record and
weights are copied there, so only its features are extracted), then prints each next to the fp32 record in
docs/claims/records. Results: docs/bench.md, "The claims configs on the CPU" (whose step times come from
``indoor-parsing bench --bf16``).
"""

import argparse
import json
import shutil
from pathlib import Path

import indoor_parsing  # noqa: F401  (the torchvision guard runs first)
from indoor_parsing.tools.claims import records as rec
from indoor_parsing.tools.claims import run as claims_run
from indoor_parsing.tools.claims.plan import DISTILL3D, GEOAWARE

COMMITTED = Path("docs/claims")
ARMS = ((GEOAWARE, "sem-only (plain CE)"), (DISTILL3D, "PSPNet"), (GEOAWARE, "GeoAware (full)"),
        (DISTILL3D, "3D-to-2D paired (DN)"))  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--arms", nargs="+", default=[name for _, name in ARMS], help="arm names (default: all four)")
    a = p.parse_args()
    (a.out / "records").mkdir(parents=True, exist_ok=True)
    shutil.copy(COMMITTED / "records" / "teacher3d.json", a.out / "records" / "teacher3d.json")
    shutil.copy(COMMITTED / "teacher3d.ckpt", a.out / "teacher3d.ckpt")
    runner = claims_run.Runner(claims_run.parse_args(["--out", str(a.out), "--precision", "bf16-mixed"]))
    for comp, name in (arm for arm in ARMS if arm[1] in a.arms):
        new = runner.arm(comp, next(arm for arm in comp.arms if arm.name == name), a.seed)
        old = json.loads((COMMITTED / "records" / f"{rec.run_name(comp.name, name, a.seed)}.json").read_text())
        for ev, metrics in old["results"].items():
            print(f"{comp.name} / {name} seed {a.seed} {ev}: fp32 mIoU {100 * metrics['mIoU']:.2f} "
                  f"({old['fit_seconds']:.0f} s fit), bf16-mixed {100 * new['results'][ev]['mIoU']:.2f} "
                  f"({new['fit_seconds']:.0f} s fit)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
