"""AutoWandbLogger: Weights & Biases logging that runs online when the user is logged in and offline otherwise.

Stack ``configs/trainer/wandb.yaml`` onto any experiment; without credentials the run is written to
``<save_dir>/wandb/offline-run-*`` and can be uploaded later with ``wandb sync``.
"""

import netrc
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import yaml
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only

MODES = ("auto", "online", "offline", "disabled")
DEFAULT_HOST = "api.wandb.ai"
CONFIG_FILE = "config.yaml"  # what LightningCLI's SaveConfigCallback writes into trainer.log_dir


def _netrc_path(env: Mapping[str, str]) -> Path:
    return Path(env["NETRC"]).expanduser() if env.get("NETRC") else Path("~/.netrc").expanduser()


def netrc_has_login(host: str = DEFAULT_HOST, path: str | Path | None = None) -> bool:
    """True when the netrc file at ``path`` (default ``~/.netrc``) holds a password for ``host`` (``wandb login``)."""
    path = Path(path).expanduser() if path is not None else _netrc_path(os.environ)
    if not path.is_file():
        return False
    try:
        entry = netrc.netrc(str(path)).authenticators(host)
    except (netrc.NetrcParseError, OSError, UnicodeDecodeError):
        # A file other tools wrote in a dialect the stdlib parser rejects: a login is still a "machine <host>" line.
        text = path.read_text(errors="replace").split()
        return any(a == "machine" and b == host for a, b in zip(text, text[1:], strict=False))
    return bool(entry and entry[2])


def wandb_mode(env: Mapping[str, str] | None = None, netrc_file: str | Path | None = None) -> str:
    """``"online"``, ``"offline"`` or ``"disabled"``: what a run started now should do.

    ``WANDB_MODE`` decides when set (``dryrun`` = offline); otherwise online exactly when credentials exist: a
    ``WANDB_API_KEY`` or a netrc entry for the W&B host (``WANDB_BASE_URL``'s host, default api.wandb.ai).
    """
    env = os.environ if env is None else env
    mode = env.get("WANDB_MODE", "").strip().lower()
    if mode in ("offline", "dryrun"):
        return "offline"
    if mode in ("online", "run", "disabled"):
        return "disabled" if mode == "disabled" else "online"
    if env.get("WANDB_API_KEY", "").strip():
        return "online"
    host = urlparse(env.get("WANDB_BASE_URL") or f"https://{DEFAULT_HOST}").hostname or DEFAULT_HOST
    return "online" if netrc_has_login(host, netrc_file if netrc_file is not None else _netrc_path(env)) else "offline"


def flatten_config(node: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> ``{"model.init_args.lr": value}``: the CLI's key names, which sweep parameters also use."""
    if not isinstance(node, dict):
        return {prefix: node}
    out: dict[str, Any] = {}
    for key, value in node.items():
        out.update(flatten_config(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


class AutoWandbLogger(WandbLogger):
    """:class:`WandbLogger` that chooses online / offline itself and uploads the resolved CLI config.

    Args:
        project: W&B project.
        name: run name (W&B picks one when None).
        save_dir: folder of the ``wandb/`` run folders; also ``trainer.log_dir`` (where LightningCLI writes
            ``config.yaml``). None = the trainer's ``default_root_dir`` once :meth:`bind_trainer` has been called
            (the CLI does, right after building the trainer), else the working directory.
        mode: ``"auto"`` (:func:`wandb_mode`), ``"online"``, ``"offline"`` or ``"disabled"``.
        log_model: upload checkpoints as ``model`` artifacts: True = the best and last at the end of training,
            ``"all"`` = every checkpoint when saved, False = none.
        log_config: upload ``config.yaml`` from ``save_dir`` and add its flattened keys to the run config.
        version: run id to resume.
        entity, group, tags, job_type, notes: passed to ``wandb.init``.
        **kwargs: other ``wandb.init`` / :class:`WandbLogger` arguments.
    """

    def __init__(
        self,
        project: str = "indoor_parsing",
        name: str | None = None,
        save_dir: str | None = None,
        mode: Literal["auto", "online", "offline", "disabled"] = "auto",
        log_model: bool | Literal["all"] = False,
        log_config: bool = True,
        version: str | None = None,
        entity: str | None = None,
        group: str | None = None,
        tags: list[str] | None = None,
        job_type: str | None = None,
        notes: str | None = None,
        **kwargs: Any,
    ):
        if mode not in MODES:
            raise ValueError(f"AutoWandbLogger: mode must be one of {MODES}, got {mode!r}")
        self.mode = wandb_mode() if mode == "auto" else mode
        # The mode goes to wandb.init instead of WandbLogger(offline=True): that one rewrites os.environ["WANDB_MODE"]
        # for the whole process and refuses log_model, although offline runs keep artifacts for `wandb sync`.
        super().__init__(
            name=name, save_dir=save_dir, version=version, project=project, log_model=log_model, offline=False,
            mode=self.mode, entity=entity, group=group, tags=tags, job_type=job_type, notes=notes, **kwargs,
        )  # fmt: skip
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous")  # wandb warns about the setting even when it is None
        self._save_dir_given = save_dir is not None
        self.log_config = log_config
        self.config_logged = False

    # ---- where the run lives ----------------------------------------------------------------------------
    def bind_trainer(self, trainer) -> None:
        """Default ``save_dir`` to ``trainer.default_root_dir`` (before the run starts; a given one is kept).

        Lightning starts the W&B run before any callback hook, so the trainer's builder must call this.
        """
        if not self._save_dir_given and self._experiment is None:
            self._save_dir = self._wandb_init["dir"] = os.fspath(trainer.default_root_dir)

    @property
    def save_dir(self) -> str:
        return self._save_dir if self._save_dir is not None else os.getcwd()

    @property
    def experiment(self):
        if self._experiment is None:
            self._wandb_init["dir"] = self.save_dir
            Path(self.save_dir).mkdir(parents=True, exist_ok=True)  # wandb falls back to /tmp for a missing dir
        return super().experiment

    # ---- config -----------------------------------------------------------------------------------------
    @rank_zero_only
    def log_hyperparams(self, params) -> None:
        super().log_hyperparams(params)
        self.upload_config()

    def upload_config(self) -> bool:
        """Upload ``<save_dir>/config.yaml`` (once) and merge its keys into the run config; True if it did."""
        path = Path(self.save_dir) / CONFIG_FILE
        if self.config_logged or not self.log_config or not path.is_file() or self.mode == "disabled":
            return False
        run = self.experiment
        config = yaml.safe_load(path.read_text()) or {}
        run.config.update({k: v for k, v in flatten_config(config).items() if v is not None}, allow_val_change=True)
        run.save(str(path), base_path=str(path.parent), policy="now")
        self.config_logged = True
        return True

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if self._experiment is not None:
            self.upload_config()  # runs that never logged hyperparameters still get their config
        super().finalize(status)
