"""CI: every notebook in colab/ runs in a fresh virtual environment that has only a wheel
built from the checkout, outside the checkout (issue 17: Colab from a fresh runtime).

  python .ci/notebooks_from_wheel.py        # from the repository root, any Python >= 3.11

Builds the wheel, makes a venv holding nothing but the Jupyter kernel, and executes each
notebook with ``RLMBA_JAX_PACKAGE=<the wheel>`` in an empty folder, so its first cell has to
install the package the way it would on Colab. Then checks that the kernel imported
rlmba_jax from that venv's site-packages, not from the checkout. Exit 1 on any error.
"""

import glob
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = r'''
import os, sys
import nbformat
from nbclient import NotebookClient
path, folder = sys.argv[1], sys.argv[2]
nb = nbformat.read(path, as_version=4)
nb.cells.append(nbformat.v4.new_code_cell(
    "import rlmba_jax; print('RLMBA_JAX_FROM', rlmba_jax.__file__)"))
NotebookClient(nb, timeout=900, kernel_name="python3",
               resources={"metadata": {"path": folder}}).execute()
errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
          if o.get("output_type") == "error"]
where = [o.get("text", "") for o in nb.cells[-1].get("outputs", [])]
print(os.path.basename(path), "errors:", len(errors), "".join(where).strip())
sys.exit(1 if errors else 0)
'''


def main() -> int:
  work = tempfile.mkdtemp(prefix="rlmba_wheel_ci_")
  dist, venv = os.path.join(work, "dist"), os.path.join(work, "venv")
  subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", ROOT,
                  "-w", dist], check=True)
  wheel, = glob.glob(os.path.join(dist, "rlmba_jax-*.whl"))
  subprocess.run([sys.executable, "-m", "venv", venv], check=True)
  python = os.path.join(venv, "bin", "python")
  subprocess.run([python, "-m", "pip", "install", "--quiet", "nbclient", "nbformat",
                  "ipykernel"], check=True)
  env = dict(os.environ, RLMBA_JAX_PACKAGE=wheel, PATH=os.path.join(venv, "bin") + os.pathsep
             + os.environ.get("PATH", ""))
  env.pop("PYTHONPATH", None)
  failed = []
  for notebook in sorted(glob.glob(os.path.join(ROOT, "colab", "*.ipynb"))):
    folder = tempfile.mkdtemp(prefix="nb_", dir=work)
    result = subprocess.run([python, "-c", RUNNER, notebook, folder], cwd=folder, env=env,
                            capture_output=True, text=True)
    print(result.stdout.strip() or result.stderr[-3000:], flush=True)
    site = os.path.join(venv, "lib")
    if result.returncode or f"RLMBA_JAX_FROM {site}" not in result.stdout:
      failed.append(os.path.basename(notebook))
      print(result.stderr[-3000:], file=sys.stderr)
  print(f"notebooks from the wheel {os.path.basename(wheel)}: "
        f"{'all ran' if not failed else 'FAILED: ' + ', '.join(failed)}")
  if not failed:
    shutil.rmtree(work, ignore_errors=True)
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
