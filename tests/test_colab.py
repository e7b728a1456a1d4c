"""The notebooks in colab/ as files: valid notebooks with no stored error, every code cell
compiles, and every name they import from rlmba_jax exists (a renamed module or function
fails here, in seconds). Running them top to bottom is CI's job after the test command:
``python .ci/notebooks_from_wheel.py`` executes each in a fresh venv holding only a wheel
built from the checkout, as a fresh Colab runtime would (about 2.5 minutes)."""

import ast
import importlib
import importlib.util
import os

import nbformat
import pytest


COLAB = os.path.join(os.path.dirname(__file__), "..", "colab")
NOTEBOOKS = sorted(f for f in os.listdir(COLAB) if f.endswith(".ipynb"))


def _code(cell) -> str:
  """A code cell as Python: shell (``!``) and magic (``%``) lines left out."""
  return "\n".join(line for line in cell.source.splitlines()
                   if not line.lstrip().startswith(("!", "%")))


def test_there_are_notebooks():
  assert {"quickstart.ipynb", "mfeat_basics.ipynb", "own_data.ipynb"} <= set(NOTEBOOKS)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_compiles_and_its_imports_exist(name):
  notebook = nbformat.read(os.path.join(COLAB, name), as_version=4)
  nbformat.validate(notebook)
  cells = [c for c in notebook.cells if c.cell_type == "code"]
  assert cells
  imported = 0
  for i, cell in enumerate(cells):
    assert not [o for o in cell.get("outputs", []) if o.get("output_type") == "error"], i
    tree = ast.parse(compile(_code(cell), f"{name} cell {i}", "exec", ast.PyCF_ONLY_AST))
    for node in ast.walk(tree):
      if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rlmba_jax"):
        module = importlib.import_module(node.module)
        for alias in node.names:
          assert hasattr(module, alias.name) or importlib.util.find_spec(
              f"{node.module}.{alias.name}"), f"{name} cell {i}: {node.module}.{alias.name}"
          imported += 1
      elif isinstance(node, ast.Import):
        for alias in node.names:
          if alias.name.startswith("rlmba_jax"):
            importlib.import_module(alias.name)
            imported += 1
  assert imported, f"{name} imports nothing from rlmba_jax"
