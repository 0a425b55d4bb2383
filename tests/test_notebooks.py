"""The notebooks run top to bottom on SynthRooms, and are stored without outputs."""

import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_notebooks_exist():
    assert [p.name for p in NOTEBOOKS] == [
        "01_data_exploration.ipynb",
        "02_train_and_evaluate.ipynb",
        "03_inside_the_model.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: strip outputs before committing"
        assert "attachments" not in cell and "execution" not in cell.get("metadata", {})


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("synthrooms_cache")
        mp.setenv("INDOOR_PARSING_CACHE", str(path))  # the kernel inherits the environment
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield path


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, cache_dir, tmp_path):
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    # The "python3" kernel must be this interpreter (the venv), not another Python on the kernel search path.
    check = f"import sys\nassert sys.executable == {sys.executable!r}, sys.executable"
    nb.cells.insert(0, nbformat.v4.new_code_cell(check))
    client = NotebookClient(nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError with the failing cell's traceback
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert images, f"{path.name} drew nothing"
