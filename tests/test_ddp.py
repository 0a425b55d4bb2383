"""Every method trains, validates, checkpoints, resumes and predicts under DDP: two CPU processes (gloo), real CLI.

Per method, on tiny SynthRooms (3 validation frames: an odd number, which Lightning's padding sampler would count
twice): a DDP fit of 2 steps with validation after each epoch; its last checkpoint validated by one process (the
reference metrics), resumed in one process and under DDP for one more step, and used by a DDP ``predict``.
``configs/trainer/ddp.yaml`` is stacked as documented, with only the CPU overrides of
:func:`tests.ddp_probe.ddp_args`; the fit runs with its ``sync_batchnorm: true`` or with it off, the DDP resume
with the other setting. The metrics each run compared are printed as ``DDP-METRICS`` lines (``pytest -s``).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from indoor_parsing.cli import cli
from tests.config_tools import shrink_config
from tests.ddp_probe import ddp_args, preload, probe_arg, read_validations, tensors_by_value

ROOT = Path(__file__).resolve().parents[1]
DDP_YAML = ROOT / "configs" / "trainer" / "ddp.yaml"
# save_top_k=0: only last.ckpt (the one resumed) is written; test_checkpoint_last covers last.ckpt next to best
COMMON = ["--trainer.enable_progress_bar=false", "--trainer.logger=false", "--checkpoint.save_top_k=0"]
EVERY_EPOCH = "--trainer.check_val_every_n_epoch=1"
TINY = ["--model.init_args.encoder_name=mobilenet_v2"]  # 2.2 M parameters instead of ResNet-18's 11 M
# 3 validation clouds, small enough to score fast
TEACHER_DATA = ["--data.init_args.data.init_args.num_scenes=5", "--data.init_args.data.init_args.split=[1, 3, 1]",
                "--data.init_args.data.init_args.point_density=300"]  # fmt: skip
# name: (experiment, extra CLI arguments, sync_batchnorm of the fit, predicts label maps, forkserver)
METHODS = {
    "baseline": ("baseline_resnet18_synthrooms", TINY, True, True, True),
    "geoaware": ("geoaware_resnet18_synthrooms", TINY, True, True, True),
    "distill3d_paired": ("distill3d_resnet18_synthrooms", TINY, False, True, True),
    "distill3d_unpaired": ("distill3d_unpaired_resnet18_synthrooms", TINY, True, True, True),
    # Teacher refresh every step; the fit validates only after step 2, so the refresh after step 1 copies BatchNorm
    # statistics that drifted per process (sync_batchnorm off): DDP's buffer broadcast must make them equal again.
    "s4net": ("s4net_resnet18_synthrooms", [*TINY, "--model.init_args.teacher_refresh=1"], False, True, True),
    # MinkowskiEngine's layers do not survive pickling: the teacher runs the documented `ddp` (one `indoor-parsing`
    # process per rank, ~10 s of imports each, so its DDP resume is left to the other methods, which share that
    # code); it predicts points, which `extract-features` writes, so no label maps here.
    "teacher3d": ("teacher3d_synthrooms", TEACHER_DATA, True, False, False),
}
SUMMARY = ("pixel_acc", "mean_acc", "mIoU", "fwIoU")
preload()


def _cli(*args: str):
    with tensors_by_value():
        return cli([*args, *COMMON])


def _indoor_parsing(*args: str) -> None:
    """``indoor-parsing ...`` in its own process (Lightning's ``ddp`` re-runs this command line for rank 1)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "indoor_parsing.cli", *args, *COMMON]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]


def _ddp(forkserver: bool, config: Path, sync_batchnorm: bool, *args: str) -> None:
    """A DDP run of the experiment with configs/trainer/ddp.yaml stacked on top (later files win) + CPU overrides."""
    stacked = ["--config", str(config), "--config", str(DDP_YAML), *ddp_args(forkserver=forkserver),
               f"--trainer.sync_batchnorm={sync_batchnorm}"]  # fmt: skip
    if forkserver:
        assert _cli(args[0], *stacked, *args[1:]).trainer.state.finished
    else:
        _indoor_parsing(args[0], *stacked, *args[1:])


def _validations(out_dir: Path, world: int, step: int | None = None) -> list[list[dict]]:
    """Validation records (one list per validation, one record per rank), all or those at ``step``."""
    per_rank = [[r for r in read_validations(out_dir, rank) if step in (None, r["step"])] for rank in range(world)]
    assert len({len(v) for v in per_rank}) == 1, "ranks ran different numbers of validations"
    return [list(records) for records in zip(*per_rank, strict=True)]


def _check_coverage(records: list[dict], expected: dict[str, list[str]]) -> None:
    """Every validation frame of every loader counted exactly once over the ranks; all ranks agree on the metrics."""
    for loader, keys in expected.items():
        seen = [k for r in records for k in r["keys"].get(loader, [])]
        assert sorted(seen) == sorted(keys), f"loader {loader}: frames {sorted(seen)} != {sorted(keys)}"
        if len(records) > 1:
            assert all(r["keys"].get(loader) for r in records), "a rank validated no frame"
    for r in records[1:]:
        assert r["results"] == records[0]["results"], "ranks disagree on the synced metrics"


def _assert_same_metrics(a: dict, b: dict, what: str) -> None:
    """Equal up to a few pixels: batches of other sizes change float rounding, which flips a near-tie argmax now and
    then (one frame counted twice or dropped moves these metrics by percent points)."""
    assert a.keys() == b.keys(), what
    for stage in a:
        assert a[stage].keys() == b[stage].keys() and set(SUMMARY) <= a[stage].keys(), what
        for k in a[stage]:  # the four summaries, and GeoAware's depth_rmse / depth_abs_rel / depth_delta1
            assert a[stage][k] == pytest.approx(b[stage][k], abs=1e-4), f"{what}: {stage}/{k}"


def _print_metrics(method: str, sync_bn: bool, single_val: dict, ddp_vals: list) -> None:
    summary = {"method": method, "sync_batchnorm_fit": sync_bn,
               "single": single_val["results"], "ddp": ddp_vals[-1][0]["results"]}  # fmt: skip
    print("DDP-METRICS " + json.dumps(summary))


def _fit_state(out_dir: Path, rank: int) -> dict:
    return torch.load(out_dir / f"fit_rank{rank}.pt", weights_only=True)


@pytest.mark.parametrize("method", list(METHODS))
def test_method_under_ddp(method, cache_dir, tmp_path):
    experiment, extra, sync_bn, predicts, forkserver = METHODS[method]
    config = shrink_config(ROOT / "configs" / "experiments" / f"{experiment}.yaml", tmp_path)
    ddp_ckpt = tmp_path / "ckpt_ddp"

    # 1. DDP fit: 2 steps (one per epoch), validation after each epoch, checkpoints.
    every = 2 if method == "s4net" else 1
    _ddp(forkserver, config, sync_bn, "fit", *extra, "--trainer.max_steps=2", "--trainer.num_sanity_val_steps=0",
         f"--trainer.check_val_every_n_epoch={every}", "--checkpoint.dirpath", str(ddp_ckpt),
         probe_arg(tmp_path / "fit"))  # fmt: skip
    ranks = [_fit_state(tmp_path / "fit", r) for r in range(2)]
    assert [s["world"] for s in ranks] == [2, 2] and [s["step"] for s in ranks] == [2, 2]
    assert ranks[0]["steps"] == ranks[1]["steps"] and len(ranks[0]["steps"]) == 2  # after every step (teacher too)
    assert ranks[0]["state"].keys() == ranks[1]["state"].keys()
    for key, value in ranks[0]["state"].items():  # parameters and buffers: network, teacher, discriminators
        torch.testing.assert_close(ranks[1]["state"][key], value, rtol=0, atol=0, msg=f"ranks differ in {key}")
    ddp_vals = _validations(tmp_path / "fit", 2)
    assert [v[0]["step"] for v in ddp_vals] == [1, 2][every - 1 :]

    # 2. The same checkpoint validated by one process: the DDP metrics, over the same frames, each counted once.
    last = str(ddp_ckpt / "last.ckpt")
    _cli("validate", "--config", str(config), *extra, "--ckpt_path", last, probe_arg(tmp_path / "single_val"))
    ((single_val,),) = _validations(tmp_path / "single_val", 1)
    expected = single_val["keys"]
    assert any(len(keys) % 2 for keys in expected.values())  # an odd number of frames: padding would show
    for records in ddp_vals:
        _check_coverage(records, expected)
    _assert_same_metrics(ddp_vals[-1][0]["results"], single_val["results"], f"{method}: DDP vs one process")

    # 3. Resume it in one process and under DDP (with the other sync_batchnorm setting): both go on from step 2.
    single = _cli("fit", "--config", str(config), *extra, "--ckpt_path", last, "--trainer.max_steps=3",
                  "--trainer.limit_val_batches=0", "--checkpoint.dirpath", str(tmp_path / "ckpt_single"),
                  probe_arg(tmp_path / "single"))  # fmt: skip
    assert single.trainer.global_step == 3
    configured = yaml.safe_load(config.read_text())["model"]["init_args"].get("optimizer", {}).get("class_path")
    if configured:  # the configured optimiser resumes, not the signature's default
        assert type(single.trainer.optimizers[0]).__name__ == configured.rsplit(".", 1)[1]
    single_state = _fit_state(tmp_path / "single", 0)
    assert (single_state["first_step"], single_state["step"]) == (2, 3)
    if not forkserver:
        _print_metrics(method, sync_bn, single_val, ddp_vals)
        return
    _ddp(forkserver, config, not sync_bn, "fit", *extra, EVERY_EPOCH, "--ckpt_path", last, "--trainer.max_steps=3",
         "--checkpoint.dirpath", str(tmp_path / "ckpt_resume"), probe_arg(tmp_path / "resume"))  # fmt: skip
    (after,) = _validations(tmp_path / "resume", 2)
    assert after[0]["step"] == 3
    _check_coverage(after, expected)
    states = [_fit_state(tmp_path / "resume", r) for r in range(2)]
    assert [(s["first_step"], s["step"]) for s in states] == [(2, 3), (2, 3)]
    assert states[0]["steps"] == states[1]["steps"]
    for key, value in states[0]["state"].items():
        torch.testing.assert_close(states[1]["state"][key], value, rtol=0, atol=0, msg=f"resumed ranks: {key}")

    _print_metrics(method, sync_bn, single_val, ddp_vals)
    if not predicts:
        return

    # 4. DDP predict: every frame written once, by one rank, atomically (no temporary files left).
    out = tmp_path / "pred"
    _ddp(forkserver, config, sync_bn, "predict", *extra, "--ckpt_path", last, "--predictions.output_dir", str(out),
         probe_arg(tmp_path / "predict"))  # fmt: skip
    records = [json.loads((tmp_path / "predict" / f"predict_rank{r}.json").read_text()) for r in range(2)]
    written = [r["keys"] for r in records]
    assert written[0] and written[1] and not set(written[0]) & set(written[1]), written
    frames = sorted(written[0] + written[1])
    assert len(frames) == len(set(frames))
    assert [r["written"] for r in records] == [[len(written[0])], [len(written[1])]]
    assert [r["total_written"] for r in records] == [[len(frames)], [len(frames)]]
    files = sorted(p for p in out.rglob("*.png") if not p.name.endswith(("_color.png", "_conf.png")))
    assert len(files) == len(frames) and len(list(out.rglob("*_color.png"))) == len(frames)
    assert len(list(out.rglob("*_conf.png"))) == len(frames)
    report = out / "labelling_report.json"  # S4-Net's auto-labelling report counts the frames of every rank
    if report.is_file():
        assert sum(json.loads(report.read_text())["labelled"].values()) == len(frames)
    assert not [p for p in out.rglob("*") if p.is_file() and ".tmp" in p.name]


def test_ddp_config_is_the_documented_one():
    """configs/trainer/ddp.yaml is what README's multi-GPU section says, and the tests above stack it unchanged."""
    trainer = yaml.safe_load(DDP_YAML.read_text())["trainer"]
    assert trainer == {"accelerator": "gpu", "devices": -1, "num_nodes": 1, "strategy": "ddp", "sync_batchnorm": True,
                       "precision": "bf16-mixed", "use_distributed_sampler": True}  # fmt: skip
    readme = (ROOT / "README.md").read_text()
    assert "--config configs/experiments/geoaware_resnet50_nyudv2.yaml --config configs/trainer/ddp.yaml" in readme
