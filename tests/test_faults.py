"""Fault injection: each way a run could go silently wrong or get stuck, done on purpose.

Every case asserts what the run does instead: refuse with the error class (and so the exit
code) that names the problem, leave no workdir behind when nothing was committed, never
damage what was committed, and resume to exactly the uninterrupted run once the cause is
gone. The uninterrupted run is ``reference`` (a tiny two-round entropy run on mfeat).
"""

import json
import os
import shutil
import subprocess
import sys
import time

import jax.numpy as jnp
import numpy as np
import pytest

import claim_worker
from conftest import REPO, make_tiny_config, read_ledger, read_rounds
from rlmba_jax import fusion
from rlmba_jax.experiment import (EXIT_CODES, CheckpointError, ConfigError, DataError,
                                  NonFiniteError, WorkdirError, WorkdirLockedError)
from rlmba_jax.experiment import rounds as rounds_lib
from rlmba_jax.experiment import run
from rlmba_jax.experiment.ledger import LedgerError


pytestmark = pytest.mark.slow  # end-to-end runs

ENTROPY = {"al.strategy": "entropy"}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("faults") / "reference")
  run(make_tiny_config(**ENTROPY), workdir)
  return workdir


def _same_as(workdir, reference):
  assert [(e["round"], e["ids"]) for e in read_ledger(workdir)] == [
      (e["round"], e["ids"]) for e in read_ledger(reference)]
  assert read_rounds(workdir) == read_rounds(reference)


# 1, 8. Bad config values and impossible starts: refused before anything is written.
@pytest.mark.parametrize("overrides,error,message", [
    ({"train.learning_rate": float("nan")}, ConfigError, "not a finite number"),
    ({"modality.temperature": float("inf")}, ConfigError, "not a finite number"),
    ({"train.annealing_epochs": -1.0}, ConfigError, "must not be negative"),
    ({"seed": 2 ** 63}, ConfigError, "seed"),
    ({"num_devices": 8}, ConfigError, "num_devices=8"),
    ({"al.rounds": 100000}, ConfigError, "pool holds"),
    ({"data.test_size": 0}, ConfigError, "no test set"),
    ({"data.modalities": "fou,xyz"}, DataError, "no modality"),
    ({"data.manual_dir": "/no/such/folder", "data.source": "tfds"}, DataError,
     "is not a folder"),
])
def test_impossible_starts_write_nothing(tmp_path, overrides, error, message):
  workdir = tmp_path / "new"
  config = make_tiny_config()
  with config.unlocked():
    for key, value in overrides.items():
      node = config
      *path, last = key.split(".")
      for p in path:
        node = node[p]
      node[last] = value
  if "data.manual_dir" in overrides:
    config.data.data_dir = str(tmp_path / "tfds")
  with pytest.raises(error, match=message):
    run(config, str(workdir))
  assert not workdir.exists()


# 2. A changed data.manual_dir is never silently ignored once a prepared copy exists.
def test_a_changed_manual_dir_is_refused(tmp_path):
  from rlmba_jax.data import load_dataset, uci_mfeat
  config = make_tiny_config()
  config.data.source = "tfds"
  config.data.data_dir = str(tmp_path / "tfds")
  load_dataset(config.data)  # the prepared copy, from the packaged CSVs
  edited = tmp_path / "edited"
  shutil.copytree(uci_mfeat.packaged_data_dir(), edited)
  name = sorted(os.listdir(edited))[0]
  os.rename(edited / name, edited / ("x" + name))  # another set of files
  config.data.manual_dir = str(edited)
  with pytest.raises(ValueError, match="was built from .* data.manual_dir asks for"):
    load_dataset(config.data)


# 3. Bit rot in a checkpoint is caught, named, and recoverable from the previous round.
def test_a_flipped_checkpoint_is_refused_and_the_previous_round_recovers(reference, tmp_path):
  workdir = str(tmp_path / "rot")
  shutil.copytree(reference, workdir)
  latest = os.path.join(workdir, "checkpoints", "2")
  files = [os.path.join(d, f) for d, _, fs in os.walk(latest) for f in fs]
  target = max(files, key=os.path.getsize)
  with open(target, "r+b") as f:
    f.seek(os.path.getsize(target) // 2)
    chunk = f.read(16)
    f.seek(os.path.getsize(target) // 2)
    f.write(bytes(b ^ 0xFF for b in chunk))
  with pytest.raises(CheckpointError, match="(?s)checkpoint 2 .*Move .*checkpoints/2"):
    run(make_tiny_config(**ENTROPY), workdir)
  shutil.move(latest, str(tmp_path / "moved_away"))
  run(make_tiny_config(**ENTROPY), workdir)  # resumes from round 1, replays line 2
  _same_as(workdir, reference)


# 4. Edited ledgers: an id changed (digest), or a labelled set the checkpoint does not hold.
def test_an_edited_ledger_line_is_refused_with_its_number(reference, tmp_path):
  workdir = str(tmp_path / "edited")
  shutil.copytree(reference, workdir)
  path = os.path.join(workdir, "ledger.jsonl")
  lines = open(path).read().splitlines()
  entry = json.loads(lines[1])
  labelled = {i for line in lines for i in json.loads(line)["ids"]}
  entry["ids"][0] = next(i for i in range(2000) if i not in labelled)
  lines[1] = json.dumps(entry, separators=(",", ":"))
  before = "\n".join(lines) + "\n"
  open(path, "w").write(before)
  with pytest.raises(LedgerError, match="line 2 .*does not match its digest"):
    run(make_tiny_config(**ENTROPY), workdir)
  assert open(path).read() == before  # nothing changed


def test_a_ledger_that_does_not_match_the_checkpoint_is_refused(reference, tmp_path):
  workdir = str(tmp_path / "mixed")
  shutil.copytree(reference, workdir)
  path = os.path.join(workdir, "ledger.jsonl")
  entries = [json.loads(line) for line in open(path)]
  entries[2]["ids"] = entries[1]["ids"]  # a round's ids duplicated, a valid digest chain
  os.remove(path)
  from rlmba_jax.experiment.ledger import Ledger
  for e in entries:
    Ledger(path).append(e["round"], e["ids"])
  with pytest.raises(WorkdirError, match="labelled set of checkpoint 2"):
    run(make_tiny_config(**ENTROPY), workdir)


# 5. NaN during training stops the round; the last good round stays and the run resumes.
def test_divergence_stops_the_round_before_its_checkpoint(tmp_path):
  workdir = tmp_path / "diverges"
  with pytest.raises(NonFiniteError, match="round 0: training diverged at epoch"):
    run(make_tiny_config(**{"train.learning_rate": 1e30, "al.rounds": 0}), str(workdir))
  assert not os.listdir(workdir / "checkpoints")
  assert len(read_ledger(workdir)) == 1


def test_a_transient_nan_is_stopped_and_the_run_resumes_exactly(reference, tmp_path,
                                                                monkeypatch):
  workdir = str(tmp_path / "transient")
  real = rounds_lib.check_finite_training

  def nan_in_round_one(r, log):
    if r == 1:
      real(r, log._replace(epoch_loss=log.epoch_loss.at[3].set(jnp.nan)))
    real(r, log)

  monkeypatch.setattr(rounds_lib, "check_finite_training", nan_in_round_one)
  with pytest.raises(NonFiniteError, match="round 1: .*epoch 3"):
    run(make_tiny_config(**ENTROPY), workdir)
  monkeypatch.setattr(rounds_lib, "check_finite_training", real)
  run(make_tiny_config(**ENTROPY), workdir)
  _same_as(workdir, reference)


# 6. One writer per workdir: the second process is refused and the first is unharmed.
HOLDER = """
import os, sys, time
sys.path.insert(0, "tests")
from conftest import make_tiny_config
from rlmba_jax.experiment import run
def hold(r, phase):
  if (r, phase) == (1, "trained"):
    open(sys.argv[2], "w").close()
    while os.path.exists(sys.argv[2]):
      time.sleep(0.1)
run(make_tiny_config(**{"al.strategy": "entropy"}), sys.argv[1], phase_callback=hold)
"""


def test_a_second_process_on_a_workdir_is_refused(reference, tmp_path):
  workdir, flag = str(tmp_path / "busy"), str(tmp_path / "holding")
  log = open(tmp_path / "first.log", "w")
  first = subprocess.Popen([sys.executable, "-c", HOLDER, workdir, flag], cwd=REPO,
                           env=dict(os.environ, PYTHONPATH=REPO), stderr=log)
  deadline = time.time() + 300
  while not os.path.exists(flag):
    assert first.poll() is None and time.time() < deadline, (tmp_path / "first.log").read_text()
    time.sleep(0.2)
  before = {f: os.path.getmtime(os.path.join(workdir, f)) for f in os.listdir(workdir)}
  with pytest.raises(WorkdirLockedError, match=f"in use by pid {first.pid}"):
    run(make_tiny_config(**ENTROPY), workdir)
  assert {f: os.path.getmtime(os.path.join(workdir, f)) for f in os.listdir(workdir)} == before
  os.remove(flag)
  assert first.wait(timeout=300) == 0, (tmp_path / "first.log").read_text()[-2000:]
  _same_as(workdir, reference)
  run(make_tiny_config(**ENTROPY), workdir)  # the lock of a finished process is free


# 7. A checkpointed last line that lost its newline is repaired, not refused.
def test_a_torn_checkpointed_line_is_repaired(reference, tmp_path):
  workdir = str(tmp_path / "torn")
  shutil.copytree(reference, workdir)
  path = os.path.join(workdir, "ledger.jsonl")
  data = open(path, "rb").read()
  open(path, "wb").write(data[:-1])  # the final newline never reached the disk
  run(make_tiny_config(**ENTROPY), workdir)
  assert open(path, "rb").read() == data
  assert not [f for f in os.listdir(workdir) if ".torn-" in f]
  _same_as(workdir, reference)


# 9. Paths that are not writable folders; exit codes of the command line.
def test_a_workdir_that_is_a_file_is_refused(tmp_path):
  path = tmp_path / "file"
  path.write_text("not a folder")
  with pytest.raises(WorkdirError, match="is a file"):
    run(make_tiny_config(), str(path))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_workdir_is_refused_in_one_line(tmp_path):
  workdir = tmp_path / "read_only"
  workdir.mkdir()
  workdir.chmod(0o555)
  try:
    with pytest.raises(WorkdirError, match="cannot write in the workdir"):
      run(make_tiny_config(), str(workdir))
  finally:
    workdir.chmod(0o755)


def test_the_command_line_prints_one_line_and_the_documented_code(tmp_path):
  busy = tmp_path / "file"
  busy.write_text("x")
  cases = [(["--config.train.learning_rate=nan"], 2, "not a finite number"),
           ([f"--workdir={busy}"], 4, "is a file")]
  for extra, code, message in cases:
    assert code in EXIT_CODES
    argv = [sys.executable, "-m", "rlmba_jax.main", "--config=configs/mfeat.py:runlocal",
            f"--workdir={tmp_path / 'w'}", *extra]
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == code and message in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_ctrl_c_exits_130_with_one_line(tmp_path):
  code = (f"import sys; sys.argv = ['rlmba-jax', '--config=configs/mfeat.py:runlocal', "
          f"'--workdir={tmp_path / 'w'}']\n"
          "import rlmba_jax.experiment.loop as loop\n"
          "def interrupted(*a, **k): raise KeyboardInterrupt\n"
          "loop.run = interrupted\n"
          "import rlmba_jax.experiment as experiment; experiment.run = interrupted\n"
          "from rlmba_jax import main; main.entry_point()\n")
  result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, PYTHONPATH=REPO))
  assert result.returncode == 130, result.stderr[-2000:]
  assert "run the same command to continue" in result.stderr
  assert "Traceback" not in result.stderr


# 10. Numerics.
def test_dirichlet_variance_keeps_float32_precision_on_confident_examples():
  for alpha in ([1e6 + 1, 1.0], [1e4 + 1, 1.0, 1.0], [1e8, 1.5, 1.0]):
    a = np.asarray(alpha, np.float64)
    s = a.sum()
    want = a * (s - a) / (s ** 2 * (s + 1))
    got = np.asarray(fusion.dirichlet_variance(jnp.asarray(alpha, jnp.float32)))
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_diversity_writes_no_int64_into_int32_under_x64():
  code = ("import warnings; warnings.simplefilter('error')\n"
          "import jax, jax.numpy as jnp\n"
          "from rlmba_jax.selection import diversity as d\n"
          "x = jax.random.normal(jax.random.key(0), (40, 3))\n"
          "labelled = jnp.zeros(40, bool).at[:2].set(True)\n"
          "d.kcenter_greedy(x, labelled, 4)\n"
          "d.kmeans_plusplus(jax.random.key(1), jnp.sum(x * x, 1),\n"
          "                  lambda j: jnp.sum((x - x[j]) ** 2, 1), ~labelled, 4)\n"
          "d.nearest_distinct(x, x[:3], ~labelled)\n")
  result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=REPO, JAX_ENABLE_X64="1"))
  assert result.returncode == 0, result.stderr[-2000:]


def test_the_guide_lists_every_exit_code():
  import re
  with open(os.path.join(REPO, "docs", "experiments.md")) as f:
    text = f.read()
  table = text[text.index("| code | meaning |"):]
  table = table[:table.index("\n\n")]
  assert {int(c) for c in re.findall(r"^\| (\d+) \|", table, re.M)} == set(EXIT_CODES)


# Issue 29: everything the resume trusts is checked.
def test_an_edited_history_in_a_checkpoint_is_refused(reference, tmp_path):
  workdir = str(tmp_path / "edited")
  shutil.copytree(reference, workdir)
  meta = os.path.join(workdir, "checkpoints", "2", "meta", "metadata")
  text = open(meta).read()
  value = json.loads(text)["history"][1]["test_top1"]
  edited = text.replace(repr(value), repr(round(value + 0.01, 6)), 1)
  assert edited != text
  open(meta, "w").write(edited)
  with pytest.raises(CheckpointError, match="checkpoint 2 .*its history .*changed"):
    run(make_tiny_config(**ENTROPY), workdir)
  shutil.move(os.path.join(workdir, "checkpoints", "2"), str(tmp_path / "away"))
  run(make_tiny_config(**ENTROPY), workdir)
  _same_as(workdir, reference)


def test_a_ledger_without_digests_or_with_extra_rounds_is_refused(reference, tmp_path):
  workdir = str(tmp_path / "nodigest")
  shutil.copytree(reference, workdir)
  path = os.path.join(workdir, "ledger.jsonl")
  lines = [json.loads(l) for l in open(path)]
  with open(path, "w") as f:
    for line in lines:
      line.pop("digest")
      f.write(json.dumps(line) + "\n")
  with pytest.raises(WorkdirError, match="line 1 has no digest"):
    run(make_tiny_config(**ENTROPY), workdir)
  extra = str(tmp_path / "extra")
  shutil.copytree(reference, extra)
  from rlmba_jax.experiment.ledger import Ledger
  Ledger(os.path.join(extra, "ledger.jsonl")).append(3, [7])
  with pytest.raises(WorkdirError, match="records 4 rounds .*al.rounds=2"):
    run(make_tiny_config(**ENTROPY), extra)


def test_two_processes_claiming_one_workdir_together_leave_the_winners_lock(tmp_path):
  """The refused process removes nothing, even when it raced the winner to the folder."""
  import multiprocessing
  # forkserver: the children fork from a fresh single-threaded server that has imported
  # the claim (and JAX) once, never from this process with its JAX threads (a fork of a
  # threaded process can deadlock; JAX warns so). Python 3.11's server ignores the test's
  # sys.path, so it preloads the library's module, not claim_worker.
  ctx = multiprocessing.get_context("forkserver")
  ctx.set_forkserver_preload(["rlmba_jax.experiment.workdir"])
  for trial in range(20):
    workdir = str(tmp_path / f"w{trial}")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=claim_worker.claim_and_hold, args=(workdir, barrier, results))
             for _ in range(2)]
    for p in procs:
      p.start()
    for p in procs:
      p.join(30)
    outcomes = sorted(results.get(timeout=5) for _ in procs)
    assert outcomes == ["held, lock present", "refused"], (trial, outcomes)


def test_sigterm_exits_130_with_one_line(tmp_path):
  code = (f"import sys; sys.argv = ['rlmba-jax', '--config=configs/mfeat.py:runlocal', "
          f"'--workdir={tmp_path / 'w'}']\n"
          "import os, signal\n"
          "import rlmba_jax.experiment as experiment\n"
          "def stopped(*a, **k): os.kill(os.getpid(), signal.SIGTERM)\n"
          "experiment.run = stopped\n"
          "from rlmba_jax import main; main.entry_point()\n")
  result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, PYTHONPATH=REPO))
  assert result.returncode == 130, result.stderr[-2000:]
  assert "interrupted" in result.stderr and "Traceback" not in result.stderr


def test_a_number_finite_in_python_but_not_in_float32_is_refused_before_any_work(tmp_path):
  with pytest.raises(ConfigError, match="learning_rate=1e.300 is not a finite number .*float32"):
    run(make_tiny_config(**{"train.learning_rate": 1e300}), str(tmp_path / "w"))
  assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("delay", [0.2, 1.5])
def test_ctrl_c_while_starting_ends_the_run_in_one_line(tmp_path, delay):
  """Ctrl-C during the imports was swallowed by JAX's gc callback (the run went on) or
  crashed the process; now it is noted and ends the start with one line and 130."""
  import signal
  import time
  workdir = tmp_path / "w"
  proc = subprocess.Popen(
      [sys.executable, "-m", "rlmba_jax.main", "--config=configs/mfeat.py:runlocal",
       f"--workdir={workdir}", "--config.data.source=files"],
      cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True)
  time.sleep(delay)
  proc.send_signal(signal.SIGINT)
  _, err = proc.communicate(timeout=300)
  assert proc.returncode == 130, err[-2000:]
  assert "Traceback" not in err and "Exception ignored" not in err, err[-2000:]
  assert err.strip().splitlines()[-1].startswith("interrupted")
