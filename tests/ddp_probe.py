"""What the DDP tests read back from every process: a callback that records per rank, and the launch settings.

DDP runs go through the real CLI (``cli([...])``) with Lightning's ``DDPStrategy`` on CPU processes (gloo). The
processes start from a forkserver that has imported the package once (``spawn`` would import torch and Lightning
in every process of every run, ~10 s each on a 2-core runner, and ``popen`` would re-run pytest); the trainer is
pickled to them as with ``ddp_spawn``, with tensors copied by value (:func:`tensors_by_value`), so every process
owns its weights as separate ``ddp`` processes would.
"""

import contextlib
import hashlib
import json
import multiprocessing
from multiprocessing.reduction import ForkingPickler
from pathlib import Path

import lightning as L
import torch

from indoor_parsing.models.minkowski_backend import import_minkowski
from indoor_parsing.training.callbacks import PredictionWriter

# Imported here, so also in the forkserver: the teacher's layers unpickle as MinkowskiEngine's top-level modules,
# which import circularly unless the package was imported first.
import_minkowski()

PRELOAD = ["indoor_parsing.lightning_cli", "indoor_parsing.methods.geoaware", "indoor_parsing.methods.distill3d",
           "indoor_parsing.methods.s4net", "indoor_parsing.methods.teacher3d", "indoor_parsing.data.points",
           "indoor_parsing.data.multiview", "indoor_parsing.data.features", "tests.ddp_probe"]  # fmt: skip
STRATEGY = json.dumps({"class_path": "lightning.pytorch.strategies.DDPStrategy",
                       "init_args": {"start_method": "forkserver"}})  # fmt: skip


def ddp_args(devices: int = 2, forkserver: bool = True) -> list[str]:
    """CLI overrides that turn configs/trainer/ddp.yaml into ``devices`` CPU processes (its ``ddp`` strategy, or
    the same DDPStrategy started from the forkserver)."""
    args = ["--trainer.accelerator=cpu", f"--trainer.devices={devices}", "--trainer.precision=32-true"]
    return args + (["--trainer.strategy", STRATEGY] if forkserver else [])


def probe_arg(out_dir: Path) -> str:
    return "--trainer.callbacks+=" + json.dumps({"class_path": "tests.ddp_probe.DDPProbe",
                                                 "init_args": {"out_dir": str(out_dir)}})  # fmt: skip


@contextlib.contextmanager
def tensors_by_value():
    """Pickle tensors to new processes by value instead of torch's shared memory.

    Shared storage would make both processes train one copy of the weights (Lightning un-shares it only for
    ``spawn``), and the forkserver passes at most 256 file descriptors.
    """
    saved = dict(ForkingPickler._extra_reducers)
    for cls in [c for c in saved if c.__module__.startswith("torch")]:
        del ForkingPickler._extra_reducers[cls]
    try:
        yield
    finally:
        ForkingPickler._extra_reducers.clear()
        ForkingPickler._extra_reducers.update(saved)


def preload() -> None:
    """Modules the forkserver imports once (effective when no forkserver runs yet in this process)."""
    multiprocessing.set_forkserver_preload(PRELOAD)


def frame_keys(batch: dict) -> list[str]:
    """``scene/sequence/index`` of every frame of an image batch, or the scene of every cloud of a point batch."""
    if "meta" not in batch:
        return list(batch["scene"])
    meta = batch["meta"]
    return [f"{s}/{q}/{int(i)}" for s, q, i in zip(meta["scene"], meta["sequence"], meta["index"], strict=True)]


def training_fingerprint(module: torch.nn.Module) -> str:
    """Hash of what training reads: every parameter and the buffers of modules kept in eval mode (S4-Net's teacher).

    The buffers of modules in training mode (BatchNorm statistics without sync_batchnorm) legitimately differ between
    processes until the next evaluation; they are compared at the end of ``fit``.
    """
    frozen = [b for m in module.modules() if not m.training for b in m.buffers(recurse=False)]
    digest = hashlib.sha1()
    for t in [*module.parameters(), *frozen]:
        digest.update(t.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class DDPProbe(L.Callback):
    """Writes, per process: every validation (frames seen per loader, summary metrics, step, sanity check or not),
    the frames of every prediction batch with the writers' counts, a :func:`training_fingerprint` after every
    training batch, and at the end of ``fit`` the full state dict with the step counters.

    Args:
        out_dir: folder of ``val_rank<r>.jsonl``, ``predict_rank<r>.json`` and ``fit_rank<r>.pt``.
    """

    def __init__(self, out_dir: str):
        self.out_dir = Path(out_dir)
        self.keys: dict[int, list[str]] = {}
        self.first_step: int | None = None
        self.steps: list[list] = []  # [global_step, training_fingerprint] after every training batch

    def _path(self, trainer, name: str) -> Path:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        return self.out_dir / name.format(rank=trainer.global_rank)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.first_step is None:
            self.first_step = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.steps.append([trainer.global_step, training_fingerprint(pl_module)])

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self.keys.setdefault(dataloader_idx, []).extend(frame_keys(batch))

    def on_validation_end(self, trainer, pl_module):
        results = {stage: {k: float(v) for k, v in r.items() if v.ndim == 0}
                   for stage, r in pl_module.last_results.items() if stage.startswith("val")}  # fmt: skip
        record = {"world": trainer.world_size, "step": trainer.global_step, "sanity": trainer.sanity_checking,
                  "keys": {str(k): v for k, v in self.keys.items()}, "results": results}  # fmt: skip
        with self._path(trainer, "val_rank{rank}.jsonl").open("a") as f:
            f.write(json.dumps(record) + "\n")
        self.keys = {}

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self.keys.setdefault(dataloader_idx, []).extend(frame_keys(batch))

    def teardown(self, trainer, pl_module, stage):
        if stage != "predict":
            return
        writers = [c for c in trainer.callbacks if isinstance(c, PredictionWriter)]
        record = {"keys": self.keys.get(0, []), "written": [w.written for w in writers],
                  "total_written": [w.total_written for w in writers]}  # fmt: skip
        self._path(trainer, "predict_rank{rank}.json").write_text(json.dumps(record))

    def on_fit_end(self, trainer, pl_module):
        state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
        torch.save({"state": state, "step": trainer.global_step, "first_step": self.first_step, "steps": self.steps,
                    "world": trainer.world_size}, self._path(trainer, "fit_rank{rank}.pt"))  # fmt: skip


def read_validations(out_dir: Path, rank: int) -> list[dict]:
    path = Path(out_dir) / f"val_rank{rank}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]
