"""Shrinking experiment configs to smoke-test size: tiny SynthRooms, tiny fixture trees for real datasets."""

from pathlib import Path

import yaml

SYNTH = "indoor_parsing.data.synthrooms.SynthRoomsDataModule"
TINY_SYNTH = {"num_scenes": 3, "frames_per_sequence": 3, "height": 48, "width": 64, "split": [1, 1, 1]}
TINY_LOADER = {"batch_size": 2, "num_workers": 0}


def _shrink_data(node, real_roots: dict[str, Path]):
    """Walk a config tree; shrink every DataModule block (SynthRooms settings, loader, image size)."""
    if isinstance(node, dict):
        cls = node.get("class_path", "")
        args = node.get("init_args")
        if isinstance(args, dict) and cls.startswith("indoor_parsing.data"):
            if cls == SYNTH:
                args.update(TINY_SYNTH)
                args.pop("root", None)
            elif cls in real_roots:
                args["root"] = str(real_roots[cls])
            if "batch_size" in args or "num_workers" in args or cls == SYNTH or cls in real_roots:
                args.update(TINY_LOADER)
            if args.get("image_size") is not None:
                args["image_size"] = [48, 64]
        for value in node.values():
            _shrink_data(value, real_roots)
    elif isinstance(node, list):
        for value in node:
            _shrink_data(value, real_roots)


def _offline_weights(node) -> None:
    """Pretrained encoder weights cannot be downloaded in tests: build the same networks randomly initialised."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "encoder_weights":
                node[key] = None
            else:
                _offline_weights(value)
    elif isinstance(node, list):
        for value in node:
            _offline_weights(value)


def shrink_config(path: Path, out_dir: Path, real_roots: dict[str, Path] | None = None) -> Path:
    """Write a smoke-test copy of an experiment config into ``out_dir``; returns its path."""
    config = yaml.safe_load(path.read_text())
    _shrink_data(config.get("data", {}), real_roots or {})
    _offline_weights(config.get("model", {}))
    trainer = config.setdefault("trainer", {})
    trainer["default_root_dir"] = str(out_dir / "run")
    trainer.pop("devices", None)
    trainer["accelerator"] = "cpu"
    trainer["precision"] = "32-true"
    trainer.pop("strategy", None)
    trainer.pop("sync_batchnorm", None)
    if "checkpoint" in config:
        config["checkpoint"]["dirpath"] = str(out_dir / "ckpt")
    out = out_dir / path.name
    out.write_text(yaml.safe_dump(config))
    return out
