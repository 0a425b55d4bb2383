"""The CLI as a new user meets it: help, short class names, run folders, one-line mistakes, quiet and legible logs."""

import warnings
from pathlib import Path

import pytest
import torch

from indoor_parsing.cli import STAGES, TOOLS, cli, main
from indoor_parsing.methods.geoaware import GeoAwareModule
from indoor_parsing.tools import config_rewrite as cr
from tests.config_tools import shrink_config

BASELINE = Path(__file__).resolve().parents[1] / "configs" / "experiments" / "baseline_resnet18_synthrooms.yaml"
FAST = ["--trainer.max_epochs=1", "--trainer.limit_val_batches=1", "--trainer.logger=false"]


@pytest.fixture
def config(tmp_path, monkeypatch):
    """A tiny SynthRooms baseline config that, like the shipped configs, leaves ``checkpoint.dirpath`` unset."""
    monkeypatch.setenv("INDOOR_PARSING_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("sys.argv", ["indoor-parsing"])  # as from a shell: no stray pytest arguments
    path = shrink_config(BASELINE, tmp_path)
    data = cr.load(path)
    del data["checkpoint"]["dirpath"]
    return cr.dump(data, path)


def _main(*args) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    return exit_info.value.code


def test_help_lists_every_command(capsys):
    assert _main("--help") == 0
    printed = capsys.readouterr().out
    for name in [*STAGES, *TOOLS]:
        assert f"\n  {name} " in printed, name
    assert {"segment", "export", "prepare", "index-capture", "bench", "claims"} <= set(TOOLS)


def test_fit_help_knows_the_methods_and_datamodules(capsys, monkeypatch):
    monkeypatch.setattr("sys.argv", ["indoor-parsing"])
    assert _main("fit", "--help") == 0
    compact = "".join(capsys.readouterr().out.split())  # the help wraps long class lists anywhere
    methods = ("geoaware.GeoAwareModule", "distill3d.Distill3DModule", "s4net.S4NetModule")
    datamodules = ("nyudv2.NYUDv2DataModule", "scannet.ScanNetDataModule", "synthrooms.SynthRoomsDataModule")
    for cls in [f"methods.{m}" for m in methods] + [f"data.{d}" for d in datamodules]:
        assert f"indoor_parsing.{cls}" in compact, cls


def test_short_class_names_resolve(config):
    run = cli(["--config", str(config), "--model", "GeoAwareModule", "--model.init_args.encoder_name", "resnet18"],
              run=False)  # fmt: skip
    assert type(run.model) is GeoAwareModule


def test_checkpoints_follow_the_run_folder(config, tmp_path):
    with_logger = [a for a in FAST if "logger" not in a]  # with a logger Lightning alone would pick its version folder
    cli(["fit", "--config", str(config), f"--trainer.default_root_dir={tmp_path / 'a'}", *with_logger])
    assert (tmp_path / "a" / "checkpoints" / "last.ckpt").is_file()
    explicit = tmp_path / "explicit"
    cli(["fit", "--config", str(config), f"--trainer.default_root_dir={tmp_path / 'b'}", "--checkpoint.dirpath",
         str(explicit), *FAST])  # fmt: skip
    assert (explicit / "last.ckpt").is_file() and not (tmp_path / "b" / "checkpoints").exists()


def test_a_second_fit_into_the_same_folder_replaces_its_checkpoints(config, tmp_path):
    folder = f"--trainer.default_root_dir={tmp_path / 'run'}"
    cli(["fit", "--config", str(config), folder, "--seed_everything=0", *FAST])
    second = cli(["fit", "--config", str(config), folder, "--seed_everything=1", *FAST])
    ckpts = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("*.ckpt"))
    assert ckpts == ["best.ckpt", "last.ckpt"]  # no best-v1.ckpt beside a stale best.ckpt
    best = torch.load(tmp_path / "run" / "checkpoints" / "best.ckpt", weights_only=False)["state_dict"]
    for key, value in second.model.state_dict().items():  # one epoch: the best is the second run's final state
        torch.testing.assert_close(best[key], value, rtol=0, atol=0, msg=key)


def test_no_shipped_config_pins_the_checkpoint_folder():
    configs = sorted((BASELINE.parents[1]).rglob("*.yaml"))
    pinned = [p.name for p in configs if ((cr.load(p) or {}).get("checkpoint") or {}).get("dirpath")]
    assert len(configs) > 40 and not pinned


def test_fit_log_shows_progress_within_the_epoch_and_no_avoidable_warnings(config, capsys):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cli(["fit", "--config", str(config), "--trainer.max_epochs=1", "--trainer.limit_val_batches=1",
             "--trainer.log_every_n_steps=1"])  # fmt: skip
    printed = capsys.readouterr()
    assert "epoch 0 1/1 batches  train/loss=" in printed.out and "epoch 0 validation  val/pixel_acc=" in printed.out
    ours = [str(w.message) for w in caught if "tensorboardX" in str(w.message) or "LeafSpec" in str(w.message)
            or "args parameter" in str(w.message) or "on_after_batch_transfer" in str(w.message)]  # fmt: skip
    assert not ours
    assert "Tip:" not in printed.out + printed.err


def test_test_prints_the_metrics_once(config, tmp_path, capsys):
    cli(["fit", "--config", str(config), f"--trainer.default_root_dir={tmp_path / 'r'}", *FAST])
    capsys.readouterr()
    cli(["test", "--config", str(config), f"--trainer.default_root_dir={tmp_path / 'r'}", "--trainer.logger=false",
         "--ckpt_path", str(tmp_path / "r" / "checkpoints" / "last.ckpt")])  # fmt: skip
    printed = capsys.readouterr().out
    assert printed.count("mIoU") == 1 and "| IoU wall |" in printed


@pytest.mark.parametrize("case", ["missing_ckpt", "truncated_ckpt", "missing_root", "photo_folder", "bad_cache"])
def test_user_mistakes_are_one_line(case, config, tmp_path, capsys):
    args = ["test", "--config", config]
    if case in ("missing_ckpt", "truncated_ckpt"):
        ckpt = tmp_path / "model.ckpt"
        if case == "truncated_ckpt":
            cli(["fit", "--config", str(config), f"--trainer.default_root_dir={tmp_path / 'r'}", *FAST])
            ckpt.write_bytes((tmp_path / "r" / "checkpoints" / "last.ckpt").read_bytes()[:5000])
        args += ["--ckpt_path", ckpt]
        expected = (ckpt, "checkpoint not found" if case == "missing_ckpt" else "truncated or corrupted")
    elif case == "missing_root":
        args = ["test", "--config", BASELINE.parent / "geoaware_resnet50_nyudv2.yaml",
                "--data.init_args.root", tmp_path / "nyu"]  # fmt: skip
        expected = (tmp_path / "nyu" / "manifest.json", "indoor-parsing prepare nyudv2")
    elif case == "photo_folder":  # a folder of the user's own files is not a SynthRooms root
        photos = tmp_path / "photos"
        photos.mkdir()
        (photos / "IMG_0001.jpg").write_bytes(b"photo")
        args = ["predict", "--config", config, "--data.init_args.root", photos]
        expected = (photos, "holds other files (IMG_0001.jpg)")
    else:
        cli(["fit", "--config", str(config), f"--trainer.default_root_dir={tmp_path / 'r'}", *FAST])
        cache = next((tmp_path / "cache" / "synthrooms").iterdir())
        (cache / "index.json").write_text("{truncated")
        args += ["--ckpt_path", tmp_path / "r" / "checkpoints" / "last.ckpt"]
        expected = (cache / "index.json", f"delete {cache} and run again")
    capsys.readouterr()
    assert _main(*args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err)
    assert err[-1].startswith(f"error: {expected[0]}: ") and expected[1] in err[-1]
    if case == "photo_folder":
        assert sorted(p.name for p in photos.iterdir()) == ["IMG_0001.jpg"]  # nothing generated into it
