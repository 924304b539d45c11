"""docs/quickstart.ipynb runs from top to bottom in a fresh kernel, and says
what it claims: the jaxrnn layer gives Flax ``nn.RNN``'s numbers with the
same weights, padding is zero, and the model learns. Skips without the
notebook tools (``pip install -e ".[test]"`` brings them).

After editing the notebook, store its new outputs with
``python tests/test_notebook.py`` (it runs the notebook and writes it back).
"""

from __future__ import annotations

import pathlib
import re

import pytest

NOTEBOOK = pathlib.Path(__file__).resolve().parents[1] / "docs" / "quickstart.ipynb"


def _text(cell) -> str:
    return "".join(out.get("text", "") for out in cell.get("outputs", []) if out.get("output_type") == "stream")


def execute(notebook) -> None:
    """Runs ``notebook`` (an nbformat node) in a fresh kernel, in docs/, filling its outputs."""
    import nbclient

    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3").execute(cwd=str(NOTEBOOK.parent))


def test_quickstart_notebook_runs_and_shows_its_outputs(monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    # jupyter_core warns (DeprecationWarning, an error here) unless told to use platformdirs.
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")

    stored = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in stored.cells if cell.cell_type == "code"]
    # The docs link the notebook "with its outputs": every code cell has them.
    assert code and all(_text(cell) for cell in code), "a code cell of the stored notebook has no output"

    fresh = nbformat.read(NOTEBOOK, as_version=4)
    execute(fresh)
    out = "\n".join(_text(cell) for cell in fresh.cells if cell.cell_type == "code")

    assert "outputs past each length are zero: True" in out
    diff = re.search(r"max \|jaxrnn - Flax\| over the batch: (\S+)", out)
    assert diff, out
    assert float(diff.group(1)) < 1e-5, f"jaxrnn's layer differs from nn.RNN by {diff.group(1)}"
    losses = [float(v) for v in re.findall(r"step \d+: loss (\S+)", out)]
    assert len(losses) == 4, out
    assert losses[-1] < 0.1, f"the model did not leave the baseline 0.167: {losses}"


if __name__ == "__main__":
    import os

    import nbformat

    os.environ.setdefault("JUPYTER_PLATFORM_DIRS", "1")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    execute(notebook)
    nbformat.write(notebook, NOTEBOOK)
    print(f"ran {NOTEBOOK} and stored its outputs")
