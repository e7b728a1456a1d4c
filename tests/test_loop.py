"""End-to-end runs of the active-learning loop: outputs, determinism, resume, bad input."""

import os
import textwrap

import pytest

from conftest import (MFEAT_POOL_SIZE, count_pool_passes, make_tiny_config, read_ledger,
                      read_rounds, run_python)
from rlmba_jax.experiment import ConfigError, WorkdirError, run

pytestmark = pytest.mark.slow  # end-to-end runs of the loop, kill -9 and resume

_rounds, _ledger = read_rounds, read_ledger


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """One uninterrupted entropy run every other test compares with."""
  workdir = str(tmp_path_factory.mktemp("reference"))
  summary = run(make_tiny_config(**{"al.strategy": "entropy"}), workdir)
  return workdir, summary


def test_a_softmax_run_predicts_the_pool_once_per_round(tmp_path, monkeypatch):
  """The evaluation's pool outputs (made for the stopping signals' stop set) serve the next
  round's selection: a softmax head's concat fusion does not read the AMCB weights."""
  calls = count_pool_passes(monkeypatch)
  run(make_tiny_config(**{"al.strategy": "entropy", "al.rounds": 1}), str(tmp_path))
  assert calls.count(MFEAT_POOL_SIZE) == 2  # rounds 0 and 1, not 3 (a second pass to select)


def test_outputs(reference):
  workdir, summary = reference
  files = sorted(os.listdir(workdir))
  assert [f for f in files if not f.startswith("events.out.tfevents.")] == [
      ".lock", "checkpoints", "config.json", "ledger.jsonl", "rounds.jsonl", "summary.json"]
  assert len(files) == 7  # and one TensorBoard event file
  rounds = _rounds(workdir)
  assert [r["round"] for r in rounds] == [0, 1, 2]
  assert [r["num_labeled"] for r in rounds] == [20, 30, 40]
  for r in rounds:
    assert r["strategy"] == "entropy" and r["seed"] == 0
    assert 0.0 <= r["test_top1"] <= 1.0 and 0.0 <= r["val_top1"] <= 1.0
    assert set(r["per_modality_test_top1"]) == {"fou", "fac", "kar", "zer", "mor"}
    assert 0.0 <= r["test_macro_f1"] <= 1.0 and len(r["per_class_test_top1"]) == 10
    for key in ("shapley", "top1_gap", "modality_weights"):
      assert set(r[key]) == set(r["per_modality_test_top1"])
    assert abs(sum(r["modality_weights"].values()) - 1.0) < 1e-5
    assert 0.0 <= r["balance"] <= 1.0
    assert r["pool_uncertainty"] is None  # softmax heads
  ledger = _ledger(workdir)
  assert [len(e["ids"]) for e in ledger] == [20, 10, 10]
  all_ids = [i for e in ledger for i in e["ids"]]
  assert len(set(all_ids)) == 40
  assert summary["num_labeled"] == [20, 30, 40]
  assert summary["final"]["test_top1"] == rounds[-1]["test_top1"]
  assert rounds[-1]["test_top1"] > 0.5  # far above chance (0.1) even with 40 labels


def test_same_seed_same_ledger_other_seed_other_ledger(reference, tmp_path):
  workdir, _ = reference
  run(make_tiny_config(**{"al.strategy": "entropy"}), str(tmp_path / "again"))
  assert _ledger(tmp_path / "again") == _ledger(workdir)
  assert _rounds(tmp_path / "again") == _rounds(workdir)
  run(make_tiny_config(**{"al.strategy": "entropy", "seed": 1, "al.rounds": 0}),
      str(tmp_path / "other"))
  assert _ledger(tmp_path / "other")[0] != _ledger(workdir)[0]


def test_more_rounds_continue_a_finished_run(reference, tmp_path):
  workdir, _ = reference
  short = str(tmp_path / "short")
  run(make_tiny_config(**{"al.strategy": "entropy", "al.rounds": 1}), short)
  assert len(_ledger(short)) == 2
  run(make_tiny_config(**{"al.strategy": "entropy", "al.rounds": 1}), short)  # no-op
  assert len(_ledger(short)) == 2
  run(make_tiny_config(**{"al.strategy": "entropy"}), short)
  assert _ledger(short) == _ledger(workdir)
  assert _rounds(short) == _rounds(workdir)


KILL_DRIVER = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, "tests")
    from conftest import make_tiny_config
    from rlmba_jax.experiment import run
    at = (int(sys.argv[2]), sys.argv[3])
    def cb(r, phase):
      if (r, phase) == at:
        os.kill(os.getpid(), signal.SIGKILL)
    run(make_tiny_config(**{"al.strategy": "entropy"}), sys.argv[1], phase_callback=cb)
""")


@pytest.mark.parametrize("round_index,phase", [(1, "labelled"), (1, "trained"),
                                               (2, "checkpointed")])
def test_kill_minus_nine_then_resume_is_exact(reference, tmp_path, round_index, phase):
  workdir = str(tmp_path / "killed")
  code = f"import sys; sys.argv = ['x', {workdir!r}, '{round_index}', '{phase}']\n" + KILL_DRIVER
  killed = run_python(code)
  assert killed.returncode == -9, killed.stderr[-2000:]
  # The resume runs in this process: only what the killed process left on disk carries over.
  run(make_tiny_config(**{"al.strategy": "entropy"}), workdir)
  ref, _ = reference
  assert _ledger(workdir) == _ledger(ref)
  assert _rounds(workdir) == _rounds(ref)


def test_torn_ledger_line_is_recovered(reference, tmp_path):
  ref, _ = reference
  workdir = str(tmp_path / "torn")
  run(make_tiny_config(**{"al.strategy": "entropy", "al.rounds": 1}), workdir)
  with open(os.path.join(workdir, "ledger.jsonl"), "a") as f:
    f.write('{"round": 2, "ids": [1')
  run(make_tiny_config(**{"al.strategy": "entropy"}), workdir)
  assert _ledger(workdir) == _ledger(ref)
  assert any(".torn-" in p for p in os.listdir(workdir))


def test_refuses_a_workdir_with_another_config_and_changes_nothing(reference, tmp_path):
  ref, _ = reference
  before = {p: open(os.path.join(ref, p), "rb").read()
            for p in ("config.json", "ledger.jsonl", "rounds.jsonl", "summary.json")}
  with pytest.raises(WorkdirError, match="config.al.strategy: workdir has 'entropy', now "
                                          "'random'"):
    run(make_tiny_config(), ref)
  after = {p: open(os.path.join(ref, p), "rb").read() for p in before}
  assert after == before


def test_budget_larger_than_the_pool_stops_before_any_work(tmp_path):
  with pytest.raises(ConfigError, match="pool holds 1398"):
    run(make_tiny_config(**{"al.budget_per_round": 700}), str(tmp_path / "w"))
  assert not (tmp_path / "w").exists()  # a run that never started leaves no workdir


def test_inconsistent_ledger_is_refused(reference, tmp_path):
  workdir = str(tmp_path / "bad")
  run(make_tiny_config(**{"al.strategy": "entropy", "al.rounds": 1}), workdir)
  path = os.path.join(workdir, "ledger.jsonl")
  lines = open(path).read().splitlines(keepends=True)
  with open(path, "a") as f:  # lines written by hand, without the chain's digest
    f.write('{"round":2,"ids":[1]}\n{"round":3,"ids":[2]}\n')
  before = open(path).read()
  with pytest.raises(WorkdirError, match="line 3 has no digest"):
    run(make_tiny_config(**{"al.strategy": "entropy"}), workdir)
  assert open(path).read() == before
  open(path, "w").write(lines[0])  # a line lost: checkpoint 1 is ahead of the ledger
  with pytest.raises(WorkdirError, match="records 1 rounds but the latest checkpoint is "
                     "round 1: the ledger lost lines; nothing was changed"):
    run(make_tiny_config(**{"al.strategy": "entropy"}), workdir)
  assert open(path).read() == lines[0]


def test_evidential_amcb_run_resumes_exactly(tmp_path):
  """RL-MBA's fusion: the AMCB weight state is checkpointed and drives the next round."""
  cfg = dict(**{"al.strategy": "entropy", "model.head": "evidential",
                "model.fusion": "evidence", "modality.momentum": 0.5})
  straight = str(tmp_path / "straight")
  run(make_tiny_config(**cfg), straight)
  rounds = _rounds(straight)
  assert rounds[0]["pool_uncertainty"] > 0
  # Round 0 trains with uniform weights; later weights follow the measured contributions.
  weights = [r["modality_weights"] for r in rounds]
  assert weights[0] != weights[1]
  best = max(rounds[0]["top1_gap"], key=rounds[0]["top1_gap"].get)
  assert weights[0][best] == max(weights[0].values())
  staged = str(tmp_path / "staged")
  run(make_tiny_config(**dict(cfg, **{"al.rounds": 1})), staged)
  run(make_tiny_config(**cfg), staged)
  assert _ledger(staged) == _ledger(straight)
  assert _rounds(staged) == rounds


@pytest.mark.slow
def test_train_warm_start_trains_on_from_the_previous_round(tmp_path):
  """``train.warm_start``: a round after the first trains on from the previous round's
  parameters (a fresh optimiser), so its first epoch starts well below a fresh
  initialisation's; round 0 is the same either way."""
  base = {"al.strategy": "entropy", "al.rounds": 1, "data.modalities": "fou,kar"}
  fresh, warm = str(tmp_path / "fresh"), str(tmp_path / "warm")
  run(make_tiny_config(**base), fresh)
  run(make_tiny_config(**{**base, "train.warm_start": True}), warm)
  f, w = _rounds(fresh), _rounds(warm)
  assert f[0]["train_loss_curve"] == w[0]["train_loss_curve"]
  assert w[1]["train_loss_curve"][0] < 0.8 * f[1]["train_loss_curve"][0]
