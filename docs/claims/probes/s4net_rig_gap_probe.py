"""How wide a camera-rig gap for S4-Net's new scene? A source stage's score on rooms of candidate rigs (session 19).

A probe for the claims report (issue 14), not part of the package. Issue 14 asks every baseline to reach 25 % mIoU;
S4-Net's source-only model reached 19.3 / 21.1 % (scan1 / scan2, 5 seeds) on the ``target_rig_v2`` room. This tests
the final weights of one S4-Net source stage (the claims' own, ``docs/claims/runs/S4-Net__source_stage__seed<S>``),
through ``indoor-parsing test``, on scan1 and scan2 of the S4-Net target room generated with each candidate rig and
three data seeds (the claims use seed 0; seeds 1-2 show how much the room alone moves the score). Each candidate is
``source_v2``'s world with a camera and sensor between ``source_v2``'s and ``target_v2``'s (``RIG_KEYS``). Only the
source-only model is scored: no S4-Net arm is involved, so the choice cannot favour the method.

    python docs/claims/probes/s4net_rig_gap_probe.py --seed 0 --out runs/s4gap
    python docs/claims/probes/s4net_rig_gap_probe.py --seed 0 --train-steps 3200 --only target_rig_v2 --out runs/s4g3200

``--train-steps N`` first fits a source stage of N steps with the claims' recipe (under ``--out``) and tests that one.
"""

import argparse
import json
from pathlib import Path

import indoor_parsing  # noqa: F401  (the torchvision guard runs first)
from indoor_parsing.cli import cli
from indoor_parsing.data.synthrooms.style import SOURCE_V2, TARGET_RIG_V2, Style, save_style
from indoor_parsing.io import write_json
from indoor_parsing.tools import config_rewrite as cr
from indoor_parsing.tools.claims import run as claims_run

SENSOR = {k: TARGET_RIG_V2.to_dict()[k] for k in ("depth_noise", "depth_holes", "grazing_cos")}
CANDIDATES = {  # name: camera height (m), pitch (deg), RGB noise (8-bit std); the depth sensor is target_rig_v2's
    "target_rig_mid": {"camera_height": [1.05, 1.35], "camera_pitch": [-21.0, -2.0], "rgb_noise": 4.0, **SENSOR},
    "target_rig_near": {"camera_height": [1.15, 1.45], "camera_pitch": [-24.0, -5.0], "rgb_noise": 3.0, **SENSOR},
}


def candidate_styles(out: Path) -> dict[str, str]:
    """Style name or style file per candidate."""
    styles = {"target_rig_v2": "target_rig_v2"}
    for name, rig in CANDIDATES.items():  # checked (Style.from_dict) before anything runs
        styles[name] = str(
            save_style(Style.from_dict({**SOURCE_V2.to_dict(), **rig, "name": name}), out / f"{name}.json")
        )
    return styles


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/s4gap"))
    p.add_argument("--seed", type=int, default=0, help="the source stage's training seed")
    p.add_argument("--rooms", type=int, nargs="+", default=[0, 1, 2], help="target data seeds (claims: 0)")
    p.add_argument("--train-steps", type=int, default=None, help="fit a source stage of this many steps first")
    p.add_argument("--only", nargs="+", default=None, help="candidate names to test (default: all)")
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    args = claims_run.parse_args(["--out", str(a.out)])
    ckpt = Path(f"docs/claims/runs/S4-Net__source_stage__seed{a.seed}/ckpt/last.ckpt")
    if a.train_steps is not None:
        source_dir = a.out / "source"
        config = claims_run._config("s4net_resnet18_synthrooms_source.yaml", {}, a.seed, a.train_steps, source_dir,
                                    args, {})  # fmt: skip
        cli(["fit", "--config", str(cr.dump(config, source_dir / "config.yaml"))])
        ckpt = source_dir / "ckpt" / "last.ckpt"
    if not ckpt.is_file():
        raise SystemExit(f"{ckpt}: no such checkpoint (train the claims' source stage of seed {a.seed} first)")
    results = {}
    for name, style in candidate_styles(a.out).items():
        if a.only is not None and name not in a.only:
            continue
        for room in a.rooms:
            over = {"model.init_args.consistency_weight": 0.0, "data.init_args.target.init_args.style": style,
                    "data.init_args.target.init_args.seed": room}  # fmt: skip
            where = a.out / f"eval_{name}_room{room}"
            cfg = claims_run._config("s4net_resnet18_synthrooms.yaml", over, a.seed, 1, where, args, {})
            run = cli(["test", "--config", str(cr.dump(cfg, where / "config.yaml")), "--ckpt_path", str(ckpt)])
            results[f"{name} room {room}"] = {
                stage.split("/")[-1]: {k: round(float(v[k]) * 100, 2) for k in ("pixel_acc", "mIoU")}
                for stage, v in run.model.last_results.items()
                if stage.startswith("test/")
            }
            print(name, room, results[f"{name} room {room}"], flush=True)
    steps = a.train_steps or 1600
    record = {"seed": a.seed, "source_steps": steps, "candidates": CANDIDATES, "results": results}
    write_json(a.out / "probe.json", record)
    print(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
