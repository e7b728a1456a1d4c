"""RL-MBA inside the loop: relative reward from reference runs, exact resume with the policy
in the checkpoint, warm start, and the three ablations."""

import textwrap

import pytest

from conftest import (MFEAT_POOL_SIZE, count_pool_passes, make_tiny_config, read_ledger,
                      read_rounds, run_python)
from rlmba_jax.experiment import WorkdirError, run


pytestmark = pytest.mark.slow  # end-to-end RL-MBA runs, kill and resume

EVIDENTIAL = {"model.head": "evidential", "model.fusion": "evidence", "train.num_epochs": 10}


_rounds, _ledger = read_rounds, read_ledger


def rlmba_config(reference_dir, **extra):
  return make_tiny_config(**{**EVIDENTIAL, "al.strategy": "rlmba",
                             "al.rlmba.reference_runs": reference_dir, **extra})


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  ref = str(tmp_path_factory.mktemp("entropy_ref"))
  run(make_tiny_config(**{**EVIDENTIAL, "al.strategy": "entropy"}), ref)
  rl = str(tmp_path_factory.mktemp("rlmba"))
  run(rlmba_config(ref), rl)
  return ref, rl


def test_relative_reward_is_val_top1_minus_the_reference(runs):
  ref, rl = runs
  ref_top1 = {r["num_labeled"]: r["val_top1"] for r in _rounds(ref)}
  rounds = _rounds(rl)
  assert "policy" not in rounds[0]
  for r in rounds[1:]:
    assert r["policy"]["raw_reward"] == pytest.approx(
        r["val_top1"] - ref_top1[r["num_labeled"]], abs=1e-6)
  assert rounds[1]["policy"]["advantage"] == 0.0  # the first reward is the baseline
  assert all(len(e["ids"]) == n for e, n in zip(_ledger(rl), (20, 10, 10)))


KILL_DRIVER = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, "tests")
    from test_rlmba_loop import rlmba_config
    from rlmba_jax.experiment import run
    workdir, ref = sys.argv[1], sys.argv[2]
    at = (int(sys.argv[3]), sys.argv[4])
    def cb(r, phase):
      if (r, phase) == at:
        os.kill(os.getpid(), signal.SIGKILL)
    run(rlmba_config(ref), workdir, phase_callback=cb)
""")


@pytest.mark.parametrize("round_index,phase", [(2, "labelled"), (1, "trained")])
def test_kill_then_resume_is_exact_with_the_policy_in_the_state(runs, tmp_path, round_index,
                                                               phase):
  ref, rl = runs
  workdir = str(tmp_path / "killed")
  argv = f"import sys; sys.argv = ['x', {workdir!r}, {ref!r}, '{round_index}', '{phase}']\n"
  killed = run_python(argv + KILL_DRIVER)
  assert killed.returncode == -9, killed.stderr[-2000:]
  run(rlmba_config(ref), workdir)  # resumed in this process from what the kill left
  assert _ledger(workdir) == _ledger(rl)
  assert _rounds(workdir) == _rounds(rl)


def test_warm_start_loads_the_earlier_policy(runs, tmp_path):
  ref, rl = runs
  warm = str(tmp_path / "warm")
  run(rlmba_config(ref, **{"al.rlmba.init_from": rl, "al.rounds": 1}), warm)
  fresh, loaded = _rounds(rl)[1]["policy"], _rounds(warm)[1]["policy"]
  assert loaded["log_prob"] != pytest.approx(fresh["log_prob"])  # other parameters
  with pytest.raises(WorkdirError, match="holds no checkpoint"):
    run(rlmba_config(ref, **{"al.rlmba.init_from": str(tmp_path)}), str(tmp_path / "x"))


def test_missing_reference_labels_are_named(runs, tmp_path):
  ref, _ = runs
  with pytest.raises(WorkdirError, match=r"no val_top1 at \[50\] labels"):
    run(rlmba_config(ref, **{"al.rounds": 3}), str(tmp_path / "r"))
  with pytest.raises(WorkdirError, match="has no rounds.jsonl"):
    run(rlmba_config(str(tmp_path / "nowhere")), str(tmp_path / "s"))


@pytest.mark.parametrize("ablation", [
    {"modality.amcb": False},
    {"al.rlmba.efda": False, "model.head": "softmax", "model.fusion": "concat"},
    {"al.rlmba.policy": False},
])
def test_ablations_run(runs, tmp_path, ablation):
  ref, _ = runs
  run(rlmba_config(ref, **{"al.rounds": 1, **ablation}), str(tmp_path))
  rounds = _rounds(tmp_path)
  assert [r["num_labeled"] for r in rounds] == [20, 30]
  if ablation.get("modality.amcb") is False:
    assert all(len(r["modality_weights"]) == 5 and abs(w - 1 / 5) < 1e-6
               for r in rounds for w in r["modality_weights"].values())  # the tiny config's 5
  if ablation.get("al.rlmba.policy") is False:
    assert "policy" not in rounds[1]
  else:
    assert "policy" in rounds[1]


def test_the_pool_is_scored_once_per_round(tmp_path, monkeypatch):
  """Evidential runs reuse the evaluation's pool outputs for the next round's selection
  (the fused opinion is re-fused with the new AMCB weights), so each round predicts the
  pool once, not twice (softmax heads: test_loop.py)."""
  calls = count_pool_passes(monkeypatch)
  run(make_tiny_config(**{**EVIDENTIAL, "al.strategy": "entropy"}), str(tmp_path))
  assert calls.count(MFEAT_POOL_SIZE) == 3  # rounds 0, 1, 2: one pool pass each


# The paper's protocol: a softmax multimodal head over evidential modality heads, with the
# selection diagnostics recorded every round.
PAPER = {"model.fusion": "concat", "model.fused_head": "softmax", "al.diagnostics": True}

PAPER_KILL_DRIVER = KILL_DRIVER.replace("run(rlmba_config(ref)",
                                        "run(rlmba_config(ref, **PAPER)").replace(
                                            "import rlmba_config", "import rlmba_config, PAPER")


@pytest.fixture(scope="module")
def paper_runs(tmp_path_factory):
  ref = str(tmp_path_factory.mktemp("entropy_paper"))
  run(make_tiny_config(**{**EVIDENTIAL, **PAPER, "al.strategy": "entropy"}), ref)
  rl = str(tmp_path_factory.mktemp("rlmba_paper"))
  run(rlmba_config(ref, **PAPER), rl)
  return ref, rl


def test_kill_then_resume_is_exact_under_the_paper_protocol(paper_runs, tmp_path):
  """Killed after training round 1 (its ledger line and diagnostics written, no
  checkpoint): the resumed run recomputes the draw and the diagnostics from the restored
  round-0 model and ends exactly as the uninterrupted run."""
  ref, rl = paper_runs
  assert "selection" in _rounds(rl)[1] and "policy" in _rounds(rl)[1]
  workdir = str(tmp_path / "killed")
  argv = f"import sys; sys.argv = ['x', {workdir!r}, {ref!r}, '1', 'trained']\n"
  killed = run_python(argv + PAPER_KILL_DRIVER)
  assert killed.returncode == -9, killed.stderr[-2000:]
  run(rlmba_config(ref, **PAPER), workdir)  # resumed in this process
  assert _ledger(workdir) == _ledger(rl)
  assert _rounds(workdir) == _rounds(rl)
