"""Two processes on localhost (JAX's distributed runtime, gloo collectives on CPU): a
streamed data set is read in per-host shards, inference reassembles exactly the
one-process outputs, and an active-learning round run by the two processes together labels
exactly what one process labels."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, xla_flags


pytestmark = pytest.mark.slow  # two processes, JAX distributed runtime

WORKER = r'''
import json, sys
import numpy as np
from rlmba_jax import parallel
parallel.initialize_distributed()
import jax
from jax.experimental import multihost_utils
from rlmba_jax.experiment import run
from rlmba_jax.experiment.start import make_trainer
from rlmba_jax.paper_configs import paper_config
from rlmba_jax.data import load_dataset
from rlmba_jax.models import build_model
out = sys.argv[1]
c = paper_config("upmc_food101", "runlocal")
c.model.encoders = "image=cnn"  # the distributed path, not ResNet-18's compile time
c.data.data_dir = out + "/tfds"
data = parallel.process_zero_first(lambda: load_dataset(c.data), "load")
mesh = parallel.make_mesh()
model = build_model(c.model, data.modalities, data.num_classes)
trainer = make_trainer(c, model, data, mesh)
state = trainer.init(jax.random.key(0), trainer.example(data.pool))
probs = trainer.predict(state.params, data.pool, None, state.model_state)["fused_probs"]
# Pool outputs stay split by row over the hosts' devices; gather them to compare.
probs = multihost_utils.process_allgather(probs, tiled=True)
if jax.process_index() == 0:
  np.save(out + "/probs.npy", np.asarray(probs))
c.al.strategy = "badge"
c.al.rounds = int(sys.argv[2])
summary = run(c, out + "/run")
print("RESULT", json.dumps({"process": jax.process_index(), "top1": summary["test_top1"],
                            "devices": len(summary["devices"])}))
'''

# The same run in one process with as many devices (two forced CPU devices).
ONE_PROCESS = r'''
import json, sys
import jax
assert jax.process_count() == 1 and jax.device_count() == 2
from rlmba_jax.experiment import run
from rlmba_jax.paper_configs import paper_config
out = sys.argv[1]
c = paper_config("upmc_food101", "runlocal")
c.model.encoders = "image=cnn"  # the distributed path, not ResNet-18's compile time
c.data.data_dir = out + "/tfds"
c.al.strategy = "badge"
c.al.rounds = int(sys.argv[2])
summary = run(c, out + "/one")
print("RESULT", json.dumps({"top1": summary["test_top1"]}))
'''


def _two_processes(tmp_path, rounds: int) -> list[dict]:
  env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_COORDINATOR_ADDRESS="localhost:12391",
             JAX_NUM_PROCESSES="2", PYTHONPATH=REPO)
  env["XLA_FLAGS"] = xla_flags()  # one CPU device per process
  procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path), str(rounds)],
                            cwd=REPO, env=dict(env, JAX_PROCESS_ID=str(i)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for i in range(2)]
  results = []
  for p in procs:
    stdout, stderr = p.communicate(timeout=600)
    assert p.returncode == 0, stderr[-3000:]
    results.append(json.loads(stdout.split("RESULT", 1)[1]))
  assert results[0]["top1"] == results[1]["top1"] and results[0]["devices"] == 2
  return results


def _one_process(tmp_path, rounds: int) -> list[float]:
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO,
             XLA_FLAGS=xla_flags("--xla_force_host_platform_device_count=2"))
  one = subprocess.run([sys.executable, "-c", ONE_PROCESS, str(tmp_path), str(rounds)],
                       cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=600, check=False)
  assert one.returncode == 0, one.stderr[-3000:]
  return json.loads(one.stdout.split("RESULT", 1)[1])["top1"]


def test_two_processes(tmp_path):
  # The initial set is a ledger line already in the workdir (labelled, not yet trained: a
  # crash after labelling, or a person's answers), so every process must replay it. Only
  # process 0 reads the ledger; if process 1 selected its own initial set instead, the
  # processes would train on different labelled sets and disagree with the one-process run.
  # The ids are ones the random initial draw would not pick.
  from rlmba_jax.experiment.ledger import Ledger  # pylint: disable=g-import-not-at-top
  config, data = _food101_fixture(tmp_path)
  config.al.strategy, config.al.rounds = "badge", 1
  given = [int(i) for i in data.pool.ids[-8:]]
  for run in ("run", "one"):
    os.makedirs(tmp_path / run)
    (tmp_path / run / "config.json").write_text(config.to_json(indent=2) + "\n")
    Ledger(str(tmp_path / run / "ledger.jsonl")).append(0, given)  # with its digest

  results = _two_processes(tmp_path, rounds=1)
  with open(tmp_path / "run" / "ledger.jsonl") as f:
    ledger = f.read()
  lines = [json.loads(l) for l in ledger.splitlines()]
  assert [len(l["ids"]) for l in lines] == [8, 4] and lines[0]["ids"] == given  # written once

  # One process selects exactly the same examples, and the model scores the same.
  one = _one_process(tmp_path, rounds=1)
  with open(tmp_path / "one" / "ledger.jsonl") as f:
    assert f.read() == ledger
  np.testing.assert_allclose(one, results[0]["top1"], atol=1e-6)

  # One process, same parameters: the same outputs, row for row.
  import jax

  from rlmba_jax import parallel
  from rlmba_jax.experiment.start import make_trainer
  from rlmba_jax.models import build_model
  c, data = _food101_fixture(tmp_path)
  mesh = parallel.make_mesh(1)
  trainer = make_trainer(c, build_model(c.model, data.modalities, data.num_classes), data,
                         mesh)
  state = trainer.init(jax.random.key(0), trainer.example(data.pool))
  probs = trainer.predict(state.params, data.pool, None, state.model_state)["fused_probs"]
  np.testing.assert_allclose(np.load(tmp_path / "probs.npy"), np.asarray(probs), atol=1e-5)


def _food101_fixture(tmp_path):
  from rlmba_jax.data import load_dataset
  from rlmba_jax.paper_configs import paper_config
  c = paper_config("upmc_food101", "runlocal")
  c.model.encoders = "image=cnn"  # as the workers' configs
  c.data.data_dir = str(tmp_path / "tfds")
  return c, load_dataset(c.data)


