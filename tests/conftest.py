"""Shared fixtures: a tiny, fast configuration of the mfeat experiment."""

import os
import subprocess
import sys
import tempfile

# A persistent XLA compilation cache shared by every test process (set before JAX loads):
# most of a tiny run's time is compiling the same programs again.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), "rlmba_jax_test_xla_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
# XLA's backend optimisation off (LLVM -O0) unless RLMBA_TEST_XLA_OPTIMIZE=1: the suite is
# mostly compiling small programs once, and at -O0 they compile several times faster (a
# ResNet + R(2+1)D initialiser: 27 s -> 5.5 s) while running somewhat slower; on 2 cores the
# cold suite took 602 s instead of 760 s. Results differ from an optimised build only in the
# last bits, and every comparison in the suite is between runs compiled the same way.
# Subprocesses inherit it; those that set their own XLA_FLAGS (the multi-device and
# multi-host tests) add it with ``xla_flags``. (At -O0, GCN-AL's picks on a pool split over
# 8 devices differ from one device's in a few places, 35 of 40, where the optimised build
# agrees: its 200 Adam steps amplify last-bit differences of the split reductions. The
# test of every strategy on a split pool allows GCN-AL that; RLMBA_TEST_XLA_OPTIMIZE=1
# checks the optimised build.)
# The same for XLA:CPU's fusion emitters: with the older ones (``use_fusion_emitters=false``)
# a tiny mfeat run compiles in 7 s instead of 10.7 s (two runs each, 2026-12-07, jaxlib
# 0.10). XLA aborts on a flag it does not know, so it is given only to the jaxlib releases
# it was checked with; others compile the slower way.
import importlib.metadata  # pylint: disable=g-import-not-at-top
import re  # pylint: disable=g-import-not-at-top

OLDER_FUSION_EMITTERS = "--xla_cpu_use_fusion_emitters=false"
TEST_XLA_FLAGS = ""
if os.environ.get("RLMBA_TEST_XLA_OPTIMIZE", "0") in ("0", ""):
  TEST_XLA_FLAGS = "--xla_backend_optimization_level=0"
  if re.match(r"0\.10(\D|$)", importlib.metadata.version("jaxlib")):
    TEST_XLA_FLAGS += " " + OLDER_FUSION_EMITTERS
  if TEST_XLA_FLAGS not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + TEST_XLA_FLAGS).strip()


def xla_flags(*flags: str) -> str:
  """``XLA_FLAGS`` for a subprocess: ``flags`` plus the suite's optimisation level."""
  return " ".join((*flags, TEST_XLA_FLAGS)).strip()


# Prepared TFDS copies of this test process only (the suite runs in parallel workers, which
# must not build the same copy at once, and must not touch the user's own copies).
os.environ.setdefault("TFDS_DATA_DIR", tempfile.mkdtemp(prefix="rlmba_jax_test_tfds_"))

import pytest  # pylint: disable=g-import-not-at-top

from rlmba_jax.experiment.config import default_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_tiny_config(**overrides):
  """Two selection rounds on mfeat with small budgets and few epochs (seconds on CPU)."""
  c = default_config()
  c.data.source = "files"  # skip building the ArrayRecord copy (tested separately)
  # The five vector views: the pix image's conv encoder was a quarter of a cold run's
  # compiling (10.7 s -> 7.7 s without it). The tests that name pix (multi-device, own
  # encoder, data) and the av_digits runs keep the image path in the loop.
  c.data.modalities = "fou,fac,kar,zer,mor"
  c.al.initial_size = 20
  c.al.budget_per_round = 10
  c.al.rounds = 2
  c.train.num_epochs = 20
  c.train.learning_rate = 5e-3
  c.train.batch_size = 32
  c.train.eval_batch_size = 256
  c.model.width = 32
  c.model.hidden = (32,)
  c.model.conv_channels = (8, 16)
  return apply_overrides(c, overrides)


def apply_overrides(c, overrides: dict):
  """Sets ``{"train.num_epochs": 3, ...}`` on config ``c`` and returns it."""
  for key, value in overrides.items():
    node = c
    *path, last = key.split(".")
    for p in path:
      node = node[p]
    node[last] = value
  return c


class Crash(Exception):
  """Raised by ``crash_at``'s callback: a run stopped at a chosen point."""


def crash_at(round_index: int, phase: str):
  """A ``phase_callback`` that raises ``Crash`` once round ``round_index`` reaches
  ``phase`` (what a kill there leaves behind, in-process)."""
  def callback(r, p):
    if (r, p) == (round_index, phase):
      raise Crash(f"round {r}, {p}")
  return callback


# Test files by cold time on 2 cores, most first (seconds summed over their tests' setup and
# call lines of `pytest -n 2 --dist loadfile tests --durations=0`, empty compilation cache,
# -O0 as above, 2026-12-07: 1,251 s in all, 649 s wall beside two training processes;
# re-measure when a file's cost changes much; a file not listed runs last). pytest-xdist
# hands files out in collection order (its own reordering, by number of tests, is turned
# off below), so the longest start first and the short ones fill in at the end: the two
# workers finish together instead of one waiting out a notebook run alone.
COLD_SECONDS = {
    "test_seeds.py": 150, "test_rlmba_loop.py": 104, "test_multidevice.py": 103,
    "test_paper_configs.py": 102, "test_loop.py": 68, "test_person.py": 65,
    "test_faults.py": 63, "test_loop_strategies.py": 63, "test_sweeps.py": 53,
    "test_episodes.py": 52, "test_multihost.py": 52, "test_mechanisms.py": 44,
    "test_paper_protocol.py": 42, "test_label_page.py": 31, "test_strategies.py": 30,
    "test_fusion.py": 29, "test_packaging.py": 28, "test_encoders.py": 26,
    "test_policy.py": 20, "test_paper_data.py": 17, "test_av_digits.py": 13,
    "test_run_outputs.py": 13, "test_stats.py": 12, "test_own_encoder.py": 11,
    "test_stopping.py": 10, "test_trainer.py": 9, "test_models.py": 8, "test_modality.py": 7,
    "test_progress.py": 7, "test_config.py": 6, "test_data.py": 4, "test_extract_av.py": 4,
    "test_metrics.py": 3, "test_compilation_cache.py": 2, "test_selection.py": 2,
    "test_label_server.py": 1, "test_colab.py": 0, "test_ledger.py": 0,
    "test_light_configs.py": 0, "test_splits.py": 0, "test_streaming.py": 0,
}


def pytest_configure(config):
  if hasattr(config.option, "loadscopereorder"):
    config.option.loadscopereorder = False


def pytest_collection_modifyitems(items):
  """Longest files first (``COLD_SECONDS``); tests keep their order within a file."""
  items.sort(key=lambda item: -COLD_SECONDS.get(os.path.basename(str(item.path)), 0))


@pytest.fixture
def tiny_config():
  return make_tiny_config


def run_python(code: str, *, env: dict | None = None, timeout: int = 600
               ) -> subprocess.CompletedProcess:
  """Runs ``code`` in a fresh interpreter (own XLA flags, killable) from the repo root."""
  full_env = dict(os.environ)
  full_env.update(env or {})
  full_env["PYTHONPATH"] = REPO + os.pathsep + full_env.get("PYTHONPATH", "")
  return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=full_env,
                        capture_output=True, text=True, timeout=timeout)


TIMING = ("select_seconds", "train_seconds", "eval_seconds")


def count_pool_passes(monkeypatch) -> list[int]:
  """The row count of every input the runs' trainers predict on from now on (the pool's
  is its size): ``start.make_trainer`` patched to count ``Trainer.predict`` calls."""
  from rlmba_jax.experiment import start  # pylint: disable=g-import-not-at-top
  calls: list[int] = []
  make_trainer = start.make_trainer

  def counting_make_trainer(*args, **kwargs):
    trainer = make_trainer(*args, **kwargs)
    predict = trainer.predict

    def counted(params, inputs, *rest, **kw):
      calls.append(next(iter(inputs.values())).shape[0])
      return predict(params, inputs, *rest, **kw)

    trainer.predict = counted
    return trainer

  monkeypatch.setattr(start, "make_trainer", counting_make_trainer)
  return calls


MFEAT_POOL_SIZE = 1398  # 1,400 less two copies of held-out rows (data.drop_pool_copies)


def read_rounds(workdir) -> list[dict]:
  """A workdir's rounds.jsonl records without their (machine-dependent) timings."""
  import json  # pylint: disable=g-import-not-at-top
  with open(os.path.join(workdir, "rounds.jsonl")) as f:
    return [{k: v for k, v in json.loads(l).items() if k not in TIMING} for l in f]


def read_ledger(workdir) -> list[dict]:
  import json  # pylint: disable=g-import-not-at-top
  with open(os.path.join(workdir, "ledger.jsonl")) as f:
    return [json.loads(l) for l in f]


# Whether a seed-batched program's floats equal the single run's in every bit here: they do
# in the users' build and at -O0; the older fusion emitters fuse the vmapped evidential
# programs differently (the same picks, floats apart in the 7th digit).
BATCHED_FLOATS_EXACT = OLDER_FUSION_EMITTERS not in TEST_XLA_FLAGS


def record_differences(a, b, rel: float = 0.0, path: str = "") -> list[str]:
  """Where two JSON records differ: ids, counts and strings exactly, floats to ``rel``
  (relative; 0: every bit). Empty when they match."""
  if isinstance(a, dict) and isinstance(b, dict):
    if set(a) != set(b):
      return [f"{path}: keys {sorted(set(a) ^ set(b))}"]
    return [d for k in a for d in record_differences(a[k], b[k], rel, f"{path}.{k}")]
  if isinstance(a, list) and isinstance(b, list):
    if len(a) != len(b):
      return [f"{path}: {len(a)} vs {len(b)} items"]
    return [d for i, (x, y) in enumerate(zip(a, b))
            for d in record_differences(x, y, rel, f"{path}[{i}]")]
  if isinstance(a, float) and isinstance(b, float):
    return [] if abs(a - b) <= rel * max(abs(a), abs(b)) else [f"{path}: {a} vs {b}"]
  return [] if a == b and type(a) is type(b) else [f"{path}: {a!r} vs {b!r}"]
