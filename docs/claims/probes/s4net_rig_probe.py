"""Which new scene for S4-Net on SynthRooms? A source stage's score on candidate target rooms (session 14).

A probe for the claims report (issue 14), not part of the package. It fits one S4-Net source stage exactly as the claims
check does (``s4net_resnet18_synthrooms_source.yaml``, seed 0, 800 steps; ``--augment true`` is its source augmentation
before session 14, ``false`` today's config), then tests its final weights, through ``indoor-parsing test``, on scan1
and scan2 of the S4-Net target room generated in each candidate style: ``target_v2`` (the claims' room until session
14), ``source_v2`` (no gap), ``rig_light`` (target_v2 with source_v2's material groups and palette: its camera, noise
and lights) and ``rig`` (source_v2 with target_v2's camera and noise, ``RIG_KEYS``). Only the source-only model is
scored: no S4-Net arm is involved.

    python docs/claims/probes/s4net_rig_probe.py --augment true --out runs/s4probe
    python docs/claims/probes/s4net_rig_probe.py --augment false --out runs/s4probe_noaug
    python docs/claims/probes/s4net_rig_probe.py --augment false --steps 1600 --num-scenes 300 --out runs/s4probe_300

The probe styles carry their own names, so their rooms differ from those of the built-in ``target_rig_v2`` (the
style chosen from this probe) that the claims check uses.
"""

import argparse
import json
from pathlib import Path

import indoor_parsing  # noqa: F401  (the torchvision guard runs first)
from indoor_parsing.cli import cli
from indoor_parsing.data.synthrooms.style import RIG_KEYS, SOURCE_V2, TARGET_V2, Style, save_style
from indoor_parsing.io import write_json
from indoor_parsing.tools import config_rewrite as cr
from indoor_parsing.tools.claims import run as claims_run


def candidate_styles(out: Path) -> dict[str, str]:
    """Style name or style file per candidate."""
    src, tgt = SOURCE_V2.to_dict(), TARGET_V2.to_dict()
    files = {
        "rig_light": {**tgt, "materials": src["materials"], "palette": src["palette"], "name": "probe_rig_light"},
        "rig": {**src, **{k: tgt[k] for k in RIG_KEYS}, "name": "probe_rig"},
    }
    styles = {"target_v2": "target_v2", "source_v2": "source_v2"}
    for name, d in files.items():  # checked (Style.from_dict) before anything trains
        styles[name] = str(save_style(Style.from_dict(d), out / f"{d['name']}.json"))
    return styles


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--augment", choices=("true", "false"), default="true")
    p.add_argument("--out", type=Path, default=Path("runs/s4probe"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--num-scenes", type=int, default=None, help="source rooms (default: the config's 100)")
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    styles = candidate_styles(a.out)
    args = claims_run.parse_args(["--out", str(a.out)])
    overrides = {"data.init_args.augment": a.augment == "true"}  # true: the config before session 14
    if a.num_scenes is not None:
        overrides["data.init_args.num_scenes"] = a.num_scenes  # session 16: more source rooms
    source_dir = a.out / "source"
    config = claims_run._config(
        "s4net_resnet18_synthrooms_source.yaml", overrides, a.seed, a.steps, source_dir, args, {}
    )
    cli(["fit", "--config", str(cr.dump(config, source_dir / "config.yaml"))])
    results = {}
    for name, style in styles.items():
        over = {"model.init_args.consistency_weight": 0.0, "data.init_args.target.init_args.style": style}
        cfg = claims_run._config("s4net_resnet18_synthrooms.yaml", over, a.seed, 1, a.out / f"eval_{name}", args, {})
        run = cli(["test", "--config", str(cr.dump(cfg, a.out / f"eval_{name}" / "config.yaml")),
                   "--ckpt_path", str(source_dir / "ckpt" / "last.ckpt")])  # fmt: skip
        results[name] = {stage.split("/")[-1]: {k: round(float(v[k]) * 100, 2) for k in ("pixel_acc", "mIoU")}
                         for stage, v in run.model.last_results.items() if stage.startswith("test/")}  # fmt: skip
        print(name, results[name], flush=True)
    record = {"augment": a.augment == "true", "seed": a.seed, "steps": a.steps, "num_scenes": a.num_scenes or 100,
              "results": results}  # fmt: skip
    write_json(a.out / "probe.json", record)
    print(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
