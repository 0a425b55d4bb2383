"""The claims check's run options that change what is trained: SynthRooms data options, trainer precision and
memory layout."""

import yaml

from indoor_parsing.tools import config_rewrite as cr

CHANNELS_LAST = "indoor_parsing.training.channels_last.ChannelsLast"


def apply_data_options(config: dict, args) -> None:
    """``--data-seed`` and ``--synthrooms`` on every SynthRooms block (scoped ones on their style's blocks)."""
    if args.data_seed is not None:
        cr.set_synthrooms(config, seed=args.data_seed)
    for scope, settings in args.synthrooms.items():
        if scope is None:
            cr.set_synthrooms(config, **settings)
        else:
            cr.set_synthrooms_of_style(config, scope, **settings)


def parse_synthrooms(items: list[str]) -> dict:
    """``[scope:]KEY=VALUE`` strings -> {scope or None: {key: YAML-parsed value}}."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--synthrooms {item!r}: expected KEY=VALUE")
        scope, _, key = key.rpartition(":")
        out.setdefault(scope or None, {})[key] = yaml.safe_load(value)
    return out


def describe(args) -> str:
    parts = [f"--data-seed {args.data_seed}"] if args.data_seed is not None else []
    parts += [f"--synthrooms {item}" for item in args.synthrooms_raw]
    return " ".join(parts) or "the configs' own"


def precision(args, teacher: bool = False) -> str | None:
    """The trainer precision of an arm: ``--precision``, else bf16-mixed off the CPU, else none (the config's own,
    fp32). The 3D teacher ignores ``--precision``: fitted once and frozen, it serves every precision's arms."""
    if args.precision is not None and not teacher:
        return args.precision
    return "bf16-mixed" if args.accelerator != "cpu" else None


def memory_layout(config: dict, args, teacher: bool = False) -> None:
    """``--channels-last``: the 2D arms' weights and batches in NHWC (the ``ChannelsLast`` callback; GeoAware's bf16
    step 1.4x faster on this CPU, docs/bench.md). Off by default, so the committed records keep their fingerprints;
    the 3D teacher (sparse tensors) never gets it."""
    if not getattr(args, "channels_last", False) or teacher:
        return
    callbacks = config["trainer"].get("callbacks") or []
    if not any(isinstance(c, dict) and c.get("class_path") == CHANNELS_LAST for c in callbacks):
        config["trainer"]["callbacks"] = [*callbacks, {"class_path": CHANNELS_LAST}]
