"""Config files stay light (issue 31, 3): loading every configs/*.py and building its config
imports ml_collections and the light defaults, never JAX or Flax."""

import json

from conftest import run_python


def test_loading_every_config_file_imports_no_jax():
  proc = run_python("""
import glob, importlib.util, json, sys
for p in sorted(glob.glob('configs/*.py')):
  if p.endswith('__init__.py'):
    continue
  spec = importlib.util.spec_from_file_location('c_' + p[8:-3], p)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  module.get_config()
print(json.dumps({"heavy": sorted(m for m in ('jax', 'flax', 'optax', 'orbax', 'numpy')
                                  if m in sys.modules),
                  "ours": sorted(m for m in sys.modules if m.startswith('rlmba_jax'))}))
""")
  assert proc.returncode == 0, proc.stderr[-2000:]
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  assert out["heavy"] == [], out
  assert out["ours"] == ["rlmba_jax", "rlmba_jax.config_defaults", "rlmba_jax.paper_configs"]


def test_the_validating_module_gives_the_same_defaults():
  from rlmba_jax import config_defaults
  from rlmba_jax.experiment import config
  assert config.default_config is config_defaults.default_config
  assert "config.al.stop_when = ''" in config.describe_config()  # comments found
