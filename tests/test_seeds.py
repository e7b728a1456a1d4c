"""Seed-batched runs: each seed's outputs equal its single run's, kill -9 and resume at
S = 4, and the refusals."""

import json
import os
import textwrap

import pytest

from conftest import (BATCHED_FLOATS_EXACT, make_tiny_config, read_ledger, read_rounds,
                      record_differences, run_python)
from rlmba_jax.experiment import ConfigError, WorkdirError, run
from rlmba_jax.experiment.event_files import event_files
from rlmba_jax.experiment.seeds import parse_seeds

SEEDS = "0-3"
FOLDERS = ["seed_0000", "seed_0001", "seed_0002", "seed_0003"]


def test_parse_seeds():
  assert parse_seeds("0-3") == (0, 1, 2, 3)
  assert parse_seeds("7, 1,100-102") == (7, 1, 100, 101, 102)
  assert parse_seeds([5, 2]) == (5, 2)
  for bad, words in (("3-1", "runs backwards"), ("a", "not a seed"), ("1,1", "given twice"),
                     ("", "no seeds"), ([2 ** 31], "outside")):
    with pytest.raises(ValueError, match=words):
      parse_seeds(bad)


@pytest.fixture(scope="module")
def batched(tmp_path_factory):
  """One uninterrupted 4-seed entropy run that the other tests compare with."""
  workdir = str(tmp_path_factory.mktemp("batched"))
  summary = run(make_tiny_config(**{"al.strategy": "entropy"}), workdir, seeds=SEEDS)
  return workdir, summary


def _seed_files(workdir):
  return {f: (read_ledger(os.path.join(workdir, f)), read_rounds(os.path.join(workdir, f)))
          for f in FOLDERS}


@pytest.mark.slow
def test_each_seed_writes_what_its_single_run_writes(batched, tmp_path):
  workdir, summary = batched
  assert sorted(os.listdir(workdir)) == sorted(
      [".lock", "checkpoints", "config.json", "seeds.json", "summary.json"] + FOLDERS)
  assert summary["seeds"] == [0, 1, 2, 3] and summary["vmap_width"] == 1
  single = str(tmp_path / "single")
  run(make_tiny_config(**{"al.strategy": "entropy", "seed": 2}), single)
  folder = os.path.join(workdir, "seed_0002")
  assert [f for f in sorted(os.listdir(folder)) if not f.startswith("events.out.")] == [
      "config.json", "ledger.jsonl", "rounds.jsonl", "summary.json"]
  # Bit for bit (vmap_width=1): the same picks and the same numbers, timings aside.
  assert read_ledger(folder) == read_ledger(single)
  assert read_rounds(folder) == read_rounds(single)
  mine, theirs = (json.load(open(os.path.join(d, f))) for d, f in
                  ((folder, "summary.json"), (single, "summary.json")))
  timing = ("seconds_this_invocation", "final")
  assert {k: v for k, v in mine.items() if k not in timing} == {
      k: v for k, v in theirs.items() if k not in timing}
  assert json.load(open(os.path.join(folder, "config.json")))["seed"] == 2
  assert event_files(folder)  # TensorBoard's run: seed_0002
  # Other seeds pick other examples.
  assert read_ledger(os.path.join(workdir, "seed_0000")) != read_ledger(folder)


KILL_DRIVER = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, "tests")
    from conftest import make_tiny_config
    from rlmba_jax.experiment import run
    at = (int(sys.argv[2]), sys.argv[3])
    def cb(r, phase):
      if (r, phase) == at:
        os.kill(os.getpid(), signal.SIGKILL)
    run(make_tiny_config(**{"al.strategy": "entropy"}), sys.argv[1], phase_callback=cb,
        seeds="0-3")
""")


@pytest.mark.slow
@pytest.mark.parametrize("round_index,phase", [(1, "labelled"), (1, "trained"),
                                               (2, "checkpointed")])
def test_kill_minus_nine_in_a_batched_round_then_resume_is_exact(batched, tmp_path,
                                                                  round_index, phase):
  workdir = str(tmp_path / "killed")
  code = f"import sys; sys.argv = ['x', {workdir!r}, '{round_index}', '{phase}']\n" + KILL_DRIVER
  killed = run_python(code)
  assert killed.returncode == -9, killed.stderr[-2000:]
  run(make_tiny_config(**{"al.strategy": "entropy"}), workdir, seeds=SEEDS)
  assert _seed_files(workdir) == _seed_files(batched[0])


@pytest.mark.slow
def test_a_round_whose_ledger_lines_were_written_for_some_seeds_only(batched, tmp_path):
  """A kill between two seeds' ledger appends: the seeds that have the line replay it,
  the others select, and the run ends as an uninterrupted one."""
  reference, _ = batched
  workdir = str(tmp_path / "partial")
  run(make_tiny_config(**{"al.strategy": "entropy", "al.rounds": 1}), workdir, seeds=SEEDS)
  for folder in FOLDERS[:2]:
    line = open(os.path.join(reference, folder, "ledger.jsonl")).read().splitlines()[2]
    with open(os.path.join(workdir, folder, "ledger.jsonl"), "a") as f:
      f.write(line + "\n")
  run(make_tiny_config(**{"al.strategy": "entropy"}), workdir, seeds=SEEDS)
  assert _seed_files(workdir) == _seed_files(reference)


@pytest.mark.slow
def test_refusals_change_nothing(batched, tmp_path):
  workdir, _ = batched
  before = _seed_files(workdir)
  config = make_tiny_config(**{"al.strategy": "entropy"})
  with pytest.raises(WorkdirError, match="holds seeds 0-3, not 0-2"):
    run(config, workdir, seeds="0-2")
  with pytest.raises(WorkdirError, match="seed-batched run"):
    run(config, workdir)
  with pytest.raises(WorkdirError, match="vmap_width=1 .* not 0"):
    run(config, workdir, seeds=SEEDS, vmap_width=0)
  assert _seed_files(workdir) == before
  with pytest.raises(ConfigError, match="seeds: .*runs backwards"):
    run(config, str(tmp_path / "w"), seeds="3-0")
  person = make_tiny_config(**{"al.strategy": "margin", "al.oracle": "person"})
  with pytest.raises(ConfigError, match="person.* runs one seed"):
    run(person, str(tmp_path / "p"), seeds=SEEDS)
  assert not (tmp_path / "w").exists() and not (tmp_path / "p").exists()


PAPER = {"model.head": "evidential", "model.fused_head": "softmax", "al.diagnostics": True}


@pytest.mark.slow
def test_rlmba_against_batched_references_equals_its_single_runs(tmp_path):
  """Per-seed policy, AMCB and reward state: RL-MBA's relative reward reads each seed's run
  of a batched BADGE reference."""
  two_views = {**PAPER, "data.modalities": "fou,kar"}  # half the compiling of six
  refs = str(tmp_path / "badge")
  run(make_tiny_config(**{**two_views, "al.strategy": "badge"}), refs, seeds="4,5")
  batched = str(tmp_path / "rlmba")
  rlmba = {**two_views, "al.strategy": "rlmba", "al.rlmba.reference_runs": refs,
           "modality.momentum": 0.5}
  run(make_tiny_config(**rlmba), batched, seeds="4,5")
  single = str(tmp_path / "single")
  run(make_tiny_config(**{**rlmba, "seed": 5}), single)
  folder = os.path.join(batched, "seed_0005")
  assert read_ledger(folder) == read_ledger(single)  # the same picks, whatever the build
  rounds = read_rounds(folder)
  # Every bit, but under the suite's older fusion emitters (conftest): float32 rounding.
  rel = 0.0 if BATCHED_FLOATS_EXACT else 1e-5
  assert not record_differences(rounds, read_rounds(single), rel)
  assert all("policy" in r and "selection" in r for r in rounds[1:])
  assert read_rounds(os.path.join(batched, "seed_0004"))[1]["policy"] != rounds[1]["policy"]


@pytest.mark.slow
def test_all_seeds_vectorised_agree_with_single_runs(batched, tmp_path):
  """vmap_width=0: one vectorised program for all seeds; float reduction order may change
  the last bits, not the run."""
  workdir = str(tmp_path / "vmapped")
  run(make_tiny_config(**{"al.strategy": "entropy"}), workdir, seeds=SEEDS, vmap_width=0)
  assert json.load(open(os.path.join(workdir, "seeds.json")))["vmap_width"] == 0
  for folder in FOLDERS:
    mine = read_rounds(os.path.join(workdir, folder))
    theirs = read_rounds(os.path.join(batched[0], folder))
    for a, b in zip(mine, theirs):
      assert abs(a["val_top1"] - b["val_top1"]) <= 0.02
      assert abs(a["train_loss"] - b["train_loss"]) < 1e-3
    assert read_ledger(os.path.join(workdir, folder))[0] == read_ledger(
        os.path.join(batched[0], folder))[0]  # round 0 is a random draw: exactly equal
