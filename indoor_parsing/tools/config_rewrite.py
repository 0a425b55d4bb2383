"""Rewriting experiment configs (plain YAML trees) for smoke tests and equal-budget comparisons.

A config's DataModule blocks may be nested (S4-Net combines a source and a target DataModule); these functions walk
the whole tree, so every method's configs are rewritten the same way.
"""

import importlib
from functools import cache
from pathlib import Path

import yaml

from indoor_parsing.config_files import includes, load  # noqa: F401  (the rewrite helpers' input)


def _walk(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


@cache
def _class(class_path: str):
    module, name = class_path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def _is_subclass(class_path: str, base_path: str) -> bool:
    cls, base = _class(class_path), _class(base_path)
    return isinstance(cls, type) and issubclass(cls, base)


def _is_synthrooms(class_path: str) -> bool:
    return _is_subclass(class_path, "indoor_parsing.data.synthrooms.SynthRoomsDataModule")


def _node(config: dict, dotted: str) -> tuple[bool, object]:
    node = config
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return False, None
        node = node[key]
    return True, node


def has_key(config: dict, dotted: str) -> bool:
    """Whether the dotted key (``data.init_args.feature_cache``) is set in the tree."""
    return _node(config, dotted)[0]


def get_key(config: dict, dotted: str, default=None):
    """The value at a dotted key, or ``default`` where the tree does not have it."""
    found, value = _node(config, dotted)
    return value if found else default


def set_key(config: dict, dotted: str, value) -> None:
    """Set a dotted key, creating the mappings above it."""
    *parents, last = dotted.split(".")
    node = config
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value


def data_blocks(config: dict):
    """Every ``{class_path: indoor_parsing...., init_args: {...}}`` block under ``config["data"]``."""
    for node in _walk(config.get("data", {})):
        if str(node.get("class_path", "")).startswith("indoor_parsing.") and isinstance(node.get("init_args"), dict):
            yield node["class_path"], node["init_args"]


def set_synthrooms(config: dict, **settings) -> None:
    """Override generation settings of every SynthRooms block (style and sequences stay the config's own)."""
    for cls, args in data_blocks(config):
        if _is_synthrooms(cls):
            args.update(settings)
            args.pop("root", None)


def set_loaders(config: dict, image_size: list[int] | None = None, **loader) -> None:
    """Override loader settings (batch_size, num_workers, ...) and, where one is set, the image size."""
    for _, args in data_blocks(config):
        if "batch_size" in args or "num_workers" in args or loader.keys() & args.keys():
            args.update(loader)
        if image_size is not None and args.get("image_size") is not None:
            args["image_size"] = list(image_size)


def set_roots(config: dict, roots: dict[str, Path]) -> None:
    """Re-point DataModules: ``roots`` maps a class path (its subclasses too) or a configured root to a folder."""
    for cls, args in data_blocks(config):
        for key, root in roots.items():
            if args.get("root") == key or ("." in key and "/" not in key and _is_subclass(cls, key)):
                args["root"] = str(root)
                break


def without_pretrained_weights(config: dict) -> None:
    """Same networks, randomly initialised (no download)."""
    for node in _walk(config.get("model", {})):
        if "encoder_weights" in node:
            node["encoder_weights"] = None


def set_cpu_trainer(config: dict, root_dir: Path, **trainer) -> None:
    """A single-process CPU trainer writing under ``root_dir`` (checkpoints in ``root_dir/ckpt``)."""
    t = config.setdefault("trainer", {})
    for key in ("devices", "strategy", "sync_batchnorm", "num_nodes"):
        t.pop(key, None)
    t.update({"accelerator": "cpu", "precision": "32-true", "default_root_dir": str(root_dir), **trainer})
    config.setdefault("checkpoint", {})["dirpath"] = str(root_dir / "ckpt")


def dump(config: dict, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def style_role(style: str) -> str:
    """``source`` / ``target`` for the built-in styles of either generator version, else the style itself."""
    return {"source_v2": "source", "target_v2": "target", "target_rig_v2": "target"}.get(style, style)


def set_synthrooms_of_style(config: dict, of_style: str, /, **settings) -> None:
    """Override generation settings of the SynthRooms blocks whose configured ``style`` is ``of_style`` (``source``
    and ``target`` also name their version-2 styles)."""
    for cls, args in data_blocks(config):
        if _is_synthrooms(cls) and style_role(args.get("style", "source")) == style_role(of_style):
            args.update(settings)
            args.pop("root", None)


def instantiate(block: dict):
    """A ``{class_path, init_args}`` block (nested blocks too) as the object it names."""
    if isinstance(block, dict) and "class_path" in block:
        kwargs = {k: instantiate(v) for k, v in (block.get("init_args") or {}).items()}
        return _class(block["class_path"])(**kwargs)
    return block
