"""Every notebook in ``notebooks/`` runs top to bottom (so they cannot rot), with tiny
sampler settings passed through the environment (the notebooks read
``BAYESLN_NB_DRAWS`` / ``BAYESLN_NB_TUNE`` / ``BAYESLN_NB_CHAINS``; their defaults are for
real use; ``BAYESLN_NB_VALIDATION=light`` makes 02_unstudied_populations hold out three
trials instead of refitting without every trial). Executed with nbclient on the
``python3`` kernel, working directory ``notebooks/``. Committed notebooks carry no outputs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("*.ipynb"))

TINY_ENV = {"BAYESLN_NB_DRAWS": "200", "BAYESLN_NB_TUNE": "200", "BAYESLN_NB_CHAINS": "2",
            "BAYESLN_NB_VALIDATION": "light"}
EXPECTED = {"01_quickstart.ipynb", "02_unstudied_populations.ipynb", "03_efficacy_vs_safety.ipynb",
            "04_frequentist_check.ipynb"}


def test_notebooks_are_found():
    assert NOTEBOOKS, f"no notebook in {NB_DIR}"
    assert {p.name for p in NOTEBOOKS} >= EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: outputs not cleared"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, monkeypatch, tmp_path):
    for k, v in TINY_ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's own (inline) backend, as for a user
    monkeypatch.setenv("PYTHONWARNINGS", "ignore::FutureWarning")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=1200, resources={"metadata": {"path": str(NB_DIR)}},
        allow_errors=False,
    )
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as exc:
        pytest.fail(f"{path.name} failed:\n{exc}")
    # the tiny settings reached the notebook (the setup cell prints them)
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "200 draws, 200 tuning steps, 2 chains" in printed
    # the figures are displayed as images, not as "<Figure size ...>" text
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outputs), "no figure rendered"
    unrendered = [o for o in outputs if o.get("data", {}).get("text/plain", "").startswith("<Figure")
                  and "image/png" not in o["data"]]
    assert not unrendered, f"{len(unrendered)} figure(s) shown as text only"
    # keep the executed copy for inspection when run with --basetemp
    nbformat.write(nb, tmp_path / path.name)
