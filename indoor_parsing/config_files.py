"""Reading experiment configs: an experiment's ``include`` list stacks pieces (configs/data, configs/method,
configs/trainer) under its own keys. One resolver, used by the CLI (lightning_cli.IndoorCLI) and every tool."""

from pathlib import Path

import yaml

from indoor_parsing.errors import UserError

INCLUDE = "include"  # an experiment's list of pieces (configs/data, configs/method, configs/trainer)


def _merged(base, over):
    """``over`` on top of ``base``: mappings merge key by key, anything else (lists too) is replaced."""
    if not (isinstance(base, dict) and isinstance(over, dict)):
        return over
    return {**base, **{k: _merged(base[k], v) if k in base else v for k, v in over.items()}}


def load(path: Path) -> dict:
    """An experiment config as one tree: its ``include`` pieces (paths relative to the file) merged in order, then
    its own keys on top; later wins. One level only: a piece never includes another (STYLE: no inheritance chains).
    The CLI (IndoorCLI) and every tool read configs through this function."""
    path = Path(path)
    config = _read(path)
    tree: dict = {}
    for name in config.pop(INCLUDE, None) or []:
        piece = _read(path.parent / name, included_by=path)
        if INCLUDE in piece:
            raise UserError(f"{path}: piece {name} has its own '{INCLUDE}' (pieces never include pieces)")
        tree = _merged(tree, piece)
    return _merged(tree, config)


def includes(path: Path) -> bool:
    """Whether the config at ``path`` stacks pieces (plain configs go to LightningCLI as they are)."""
    path = Path(path)
    return path.suffix in (".yaml", ".yml") and path.is_file() and INCLUDE in (yaml.safe_load(path.read_text()) or {})


def _read(path: Path, included_by: Path | None = None) -> dict:
    where = f" (included by {included_by})" if included_by else ""
    if not path.is_file():
        raise UserError(f"{path}: config file not found{where}")
    try:
        tree = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise UserError(f"{path}: not valid YAML{where}: {err}") from err
    if not isinstance(tree, dict):
        raise UserError(f"{path}: a config must be a mapping of keys{where}, got {type(tree).__name__}")
    return tree
