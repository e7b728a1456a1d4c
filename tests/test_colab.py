"""The notebooks in colab/ run top to bottom in a headless Jupyter kernel (nbclient)."""

import os

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow  # runs the notebooks

COLAB = os.path.join(os.path.dirname(__file__), "..", "colab")


@pytest.mark.parametrize("name", sorted(f for f in os.listdir(COLAB) if f.endswith(".ipynb")))
def test_notebook_runs(name, tmp_path):
  notebook = nbformat.read(os.path.join(COLAB, name), as_version=4)
  client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                          resources={"metadata": {"path": str(tmp_path)}})
  client.execute()
  errors = [o for cell in notebook.cells if cell.cell_type == "code"
            for o in cell.get("outputs", []) if o.get("output_type") == "error"]
  assert not errors
