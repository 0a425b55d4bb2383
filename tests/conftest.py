import os
from pathlib import Path

import pytest

import indoor_parsing  # noqa: F401  (first: its torchvision guard must run before lightning is imported)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The shared real sample frames (../shared/realdata beside the checkout, or $INDOOR_PARSING_REALDATA)."""
    candidates = [Path(os.environ["INDOOR_PARSING_REALDATA"])] if "INDOOR_PARSING_REALDATA" in os.environ else []
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "realdata")
    for path in candidates:
        if path.is_dir():
            return path
    raise FileNotFoundError(
        f"real sample data not found at {[str(p) for p in candidates]}; set INDOOR_PARSING_REALDATA"
    )


@pytest.fixture(scope="session")
def real_roots(tmp_path_factory) -> dict:
    """Prepared fixture trees of NYU-Dv2, SUN RGB-D, ScanNet and S3DIS, keyed by DataModule class path."""
    from tests.real_fixtures import build_all

    return build_all(tmp_path_factory.mktemp("real"))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """A SynthRooms cache folder (INDOOR_PARSING_CACHE) shared by one test module's runs."""
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("synthrooms_cache")
        mp.setenv("INDOOR_PARSING_CACHE", str(path))
        yield path
