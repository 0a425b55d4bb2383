"""Shrinking experiment configs to smoke-test size: tiny SynthRooms, tiny fixture trees for real datasets."""

from pathlib import Path

from indoor_parsing.distill.extract import build_smoke_cache
from indoor_parsing.methods.cascade_depth import build_smoke_depth_checkpoint
from indoor_parsing.tools import config_rewrite as cr

TINY_SYNTH = {"num_scenes": 3, "frames_per_sequence": 3, "height": 48, "width": 64, "split": [1, 1, 1]}


def shrink_config(path: Path, out_dir: Path, real_roots: dict[str, Path] | None = None) -> Path:
    """Write a smoke-test copy of an experiment config into ``out_dir``; returns its path."""
    config = cr.load(path)
    cr.set_synthrooms(config, **TINY_SYNTH)
    cr.set_roots(config, real_roots or {})
    cr.set_loaders(config, image_size=[48, 64], batch_size=2, num_workers=0)
    for _, args in cr.data_blocks(config):
        if "max_points" in args:
            args["max_points"] = 5000
    cr.without_pretrained_weights(config)
    cr.set_cpu_trainer(config, out_dir / "run", check_val_every_n_epoch=1)  # smoke runs are 1-2 epochs
    config["checkpoint"]["dirpath"] = str(out_dir / "ckpt")
    cache = build_smoke_cache(config, out_dir / "feature_cache")  # Distill3D: a cache from a random teacher
    if cache:
        config["data"]["init_args"]["feature_cache"] = cache
    depth_ckpt = build_smoke_depth_checkpoint(config, out_dir)  # Distill3D cascade: an untrained depth stage
    if depth_ckpt:
        config["model"]["init_args"]["depth_ckpt"] = depth_ckpt
    return cr.dump(config, out_dir / path.name)
