"""The same run on 1 and on 8 (forced CPU) devices gives the same result."""

import json
import textwrap

import pytest

from conftest import run_python

DRIVER = textwrap.dedent("""
    import json, os, sys
    sys.path.insert(0, "tests")
    import jax
    assert jax.device_count() == 8, jax.devices()
    from conftest import make_tiny_config
    from rlmba_jax.experiment import run
    from rlmba_jax import parallel
    from rlmba_jax.train import Trainer
    import optax
    from rlmba_jax.models import MultimodalClassifier
    from rlmba_jax.data.specs import ModalitySpec
    out = {}
    for n in (1, 8):
      workdir = os.path.join(sys.argv[1], str(n))
      run(make_tiny_config(**{"al.strategy": "entropy", "num_devices": n}), workdir)
      out[n] = {"ledger": open(os.path.join(workdir, "ledger.jsonl")).read(),
                "rounds": [json.loads(l) for l in open(os.path.join(workdir, "rounds.jsonl"))]}
    try:
      Trainer(MultimodalClassifier((ModalitySpec("x", (3,)),), 2), optax.adam(1e-3),
              batch_size=36, num_epochs=1, eval_batch_size=64, mesh=parallel.make_mesh(8))
    except ValueError as e:
      out["error"] = str(e)
    print("RESULT" + json.dumps(out))
""")


@pytest.mark.slow
def test_one_and_eight_devices_select_and_score_the_same(tmp_path):
  proc = run_python(f"import sys; sys.argv = ['x', {str(tmp_path)!r}]\n" + DRIVER,
                    env={"XLA_FLAGS": "--xla_force_host_platform_device_count=8"})
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout.split("RESULT", 1)[1])
  one, eight = out["1"], out["8"]
  assert one["ledger"] == eight["ledger"]
  for a, b in zip(one["rounds"], eight["rounds"]):
    for key in ("test_top1", "val_top1", "test_nll", "train_loss"):
      assert abs(a[key] - b[key]) < 1e-4, (key, a[key], b[key])
  assert "batch_size=36 is not a multiple of the 8 devices" in out["error"]
