"""The research notebooks run top to bottom (their cells assert what they show).

Each notebook reads ``CNN_JAX_NOTEBOOK_QUICK`` in its first code cell; the suite sets it to
"1" so every notebook runs on its short settings (fewer magnitudes, a smaller sweep).
"""

import ast
import glob
import os

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))
QUICK_SWITCH = "CNN_JAX_NOTEBOOK_QUICK"
# Modules a notebook may import besides cnn_jax: the standard library and third-party
# packages; nothing from this repository's scripts/ or tests/.
PROJECT_ELSEWHERE = ("scripts", "tests", "experiments", "notebooks")


def code_cells(path):
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def imported_modules(source: str) -> set[str]:
    """Top-level names of the modules ``source`` imports."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_there_are_notebooks():
    names = {os.path.basename(p) for p in NOTEBOOKS}
    assert {"lecture_convolution.ipynb", "equivariance.ipynb",
            "depth_and_density.ipynb"} <= names


def test_imported_modules_reads_imports():
    assert imported_modules("import os\nimport jax.numpy as jnp\nfrom cnn_jax import ops\n"
                            "from . import x\n") == {"os", "jax", "cnn_jax"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_is_stored_without_outputs(path):
    dirty = [i for i, c in enumerate(code_cells(path))
             if c.get("outputs") or c.get("execution_count") is not None]
    assert not dirty, (f"{os.path.basename(path)}: code cells {dirty} hold outputs or execution "
                       "counts; clear them before committing")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_imports_cnn_jax_and_nothing_else_of_the_project(path):
    cells = code_cells(path)
    modules = set().union(*(imported_modules(c.source) for c in cells))
    assert "cnn_jax" in modules
    assert not modules & set(PROJECT_ELSEWHERE), modules
    assert not any("sys.path" in c.source for c in cells)
    readers = [i for i, c in enumerate(cells) if QUICK_SWITCH in c.source]
    assert readers in ([], [0]), f"only the first code cell may read {QUICK_SWITCH}: {readers}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_runs(path, tmp_path, monkeypatch):
    nb = nbformat.read(path, as_version=4)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv(QUICK_SWITCH, "1")
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the notebooks' scratch runs go there
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
