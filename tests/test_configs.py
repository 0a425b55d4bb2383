"""Every experiment config runs through the real CLI with fast_dev_run on tiny data (STYLE: configs are tested)."""

from pathlib import Path

import pytest
import yaml

from indoor_parsing.cli import cli
from indoor_parsing.tools import config_rewrite as cr
from tests.config_tools import shrink_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs" / "experiments").rglob("*.yaml"))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory, monkeypatch_module):
    path = tmp_path_factory.mktemp("synthrooms_cache")
    monkeypatch_module.setenv("INDOOR_PARSING_CACHE", str(path))
    return path


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.mark.parametrize("config", CONFIGS, ids=[str(c.relative_to(CONFIGS[0].parents[0])) for c in CONFIGS])
def test_experiment_config_fast_dev_run(config, cache_dir, real_roots, tmp_path):
    small = shrink_config(config, tmp_path, real_roots)
    run = cli(["fit", "--config", str(small), "--trainer.fast_dev_run=true"])
    assert run.trainer.state.finished and run.trainer.global_step >= 1


def test_stacked_experiment_prints_its_resolved_pieces(capsys, tmp_path):
    """An ``include`` list reaches LightningCLI resolved: --print_config shows the pieces plus the row's own keys."""
    row = CONFIGS[0].parents[0] / "geoaware_table4" / "nyudv2" / "depem.yaml"
    with pytest.raises(SystemExit):
        cli(["fit", "--config", str(row), "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["data"]["init_args"]["image_size"] == [240, 320]  # configs/data/nyudv2_geoaware.yaml
    assert printed["model"]["init_args"]["depth_branch"] and printed["model"]["init_args"]["fusion"] == "none"
    assert printed["trainer"]["default_root_dir"] == "runs/geoaware_table4/nyudv2/depem"
    assert printed == {**printed, **{k: v for k, v in cr.load(row).items() if k == "seed_everything"}}
    (tmp_path / "piece.yaml").write_text("include: [other.yaml]\n")
    (tmp_path / "x.yaml").write_text("include: [piece.yaml]\n")
    with pytest.raises(ValueError, match="pieces never include pieces"):
        cr.load(tmp_path / "x.yaml")
