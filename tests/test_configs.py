"""Every experiment config runs through the real CLI with fast_dev_run on tiny data (STYLE: configs are tested)."""

from pathlib import Path

import pytest

from indoor_parsing.cli import cli
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
