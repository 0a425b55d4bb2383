"""Probe (session 20): do claims arms trained in bf16-mixed on the CPU score like their committed fp32 records?

    python docs/claims/probes/bf16_probe.py --out /tmp/bf16_probe --seed 0
    python docs/claims/probes/bf16_probe.py --out /tmp/bf16_probe --seed 1 --arms PSPNet
    python docs/claims/probes/bf16_probe.py --out /tmp/bf16_probe --time-steps   # step times only (~5 min)

Trains seed ``--seed`` of GeoAware's sem-only and full rows and of Distill3D's PSPNet and DN rows (or ``--arms``) with
``indoor-parsing claims --precision bf16-mixed`` settings into ``--out`` (the 3D teacher's committed record and
weights are copied there, so only its features are extracted), then prints each next to the fp32 record in
docs/claims/records. Results: docs/bench.md, "The claims configs on the CPU".
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
TIMED = [f"configs/experiments/{c}.yaml" for c in ("pspnet_resnet18_synthrooms", "geoaware_table4/synthrooms/spf")]
ARMS = ((GEOAWARE, "sem-only (plain CE)"), (DISTILL3D, "PSPNet"), (GEOAWARE, "GeoAware (full)"),
        (DISTILL3D, "3D-to-2D paired (DN)"))  # fmt: skip


def time_steps(work: Path) -> None:
    """Lightning and bare training step, fp32 / bf16-mixed x contiguous / channels_last, batch 8 at 96x128."""
    import torch

    from indoor_parsing.tools.bench import bench_method

    for config in TIMED:
        for channels_last in (False, True):
            for precision in ("32-true", "bf16-mixed"):
                r = bench_method(config, (96, 128), 8, 12, 3, torch.device("cpu"), precision, channels_last, work, 1)
                print(f"{Path(config).stem} {r['precision']}: Lightning {8 / r['train_lightning']:.3f} s/step, "
                      f"bare {8 / r['train_bare']:.3f} s/step", flush=True)  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--arms", nargs="+", default=[name for _, name in ARMS], help="arm names (default: all four)")
    p.add_argument("--time-steps", action="store_true", help="time the steps only; train nothing")
    a = p.parse_args()
    (a.out / "records").mkdir(parents=True, exist_ok=True)
    if a.time_steps:
        return time_steps(a.out)
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
