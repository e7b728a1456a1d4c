"""The notebooks in colab/ run top to bottom (code cells executed in order)."""

import json
import os

import pytest

COLAB = os.path.join(os.path.dirname(__file__), "..", "colab")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(f for f in os.listdir(COLAB) if f.endswith(".ipynb")))
def test_notebook_runs(name):
  with open(os.path.join(COLAB, name)) as f:
    notebook = json.load(f)
  namespace = {"__name__": "__main__"}
  for cell in notebook["cells"]:
    if cell["cell_type"] != "code":
      continue
    source = "".join(cell["source"])
    source = "\n".join(l for l in source.splitlines() if not l.lstrip().startswith(("%", "!")))
    exec(compile(source, f"{name}:cell", "exec"), namespace)  # pylint: disable=exec-used
