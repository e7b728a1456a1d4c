"""Stopping signals: Cohen's kappa against scikit-learn, the signals by hand, and a run that
ends on its signal, stays ended, and goes on when the signal is switched off."""

import json
import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from sklearn.metrics import cohen_kappa_score

from conftest import make_tiny_config
from rlmba_jax.experiment import stopping

OPTIONS = {"set_size": 100, "kappa": 0.9, "window": 2, "min_gain": 0.01}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=40))
def test_cohens_kappa_matches_scikit_learn(pairs):
  a, b = (np.array(x) for x in zip(*pairs))
  ours = float(stopping.cohens_kappa(a, b, 4))
  if len(set(a) | set(b)) == 1:
    assert ours == 1.0  # one and the same constant labelling (scikit-learn gives nan)
    return
  assert ours == pytest.approx(cohen_kappa_score(a, b), abs=1e-5)


def test_the_stop_set_is_fixed_by_the_split_and_capped_by_the_pool():
  a = stopping.stop_set_positions(500, 100, 0)
  assert len(set(a.tolist())) == 100 and (np.diff(a) > 0).all() and a.max() < 500
  assert (a == stopping.stop_set_positions(500, 100, 0)).all()
  assert not (a == stopping.stop_set_positions(500, 100, 1)).all()
  assert (stopping.stop_set_positions(50, 100, 0) == np.arange(50)).all()


def test_signals_by_hand():
  p0, p1 = np.array([0, 1, 2, 0]), np.array([0, 1, 2, 1])
  first = stopping.stopping_fields([], p0, 0.50, 3, OPTIONS)
  assert first == {"kappa": None, "mean_kappa": None, "stabilized": False,
                   "val_gain": None, "plateau": False}
  h = [{"round": 0, "val_top1": 0.50, "stop_set_predictions": p0.tolist(),
        "stopping": first}]
  second = stopping.stopping_fields(h, p1, 0.60, 3, OPTIONS)
  k = cohen_kappa_score(p0, p1)
  assert second["kappa"] == pytest.approx(k) and second["mean_kappa"] is None
  assert second["val_gain"] is None  # window 2: needs two earlier rounds
  h.append({"round": 1, "val_top1": 0.60, "stop_set_predictions": p1.tolist(),
            "stopping": second})
  third = stopping.stopping_fields(h, p1, 0.605, 3, OPTIONS)
  assert third["kappa"] == 1.0 and third["mean_kappa"] == pytest.approx((k + 1) / 2)
  assert third["stabilized"] == ((k + 1) / 2 >= 0.9)
  assert third["val_gain"] == pytest.approx(0.105) and not third["plateau"]
  assert stopping.should_stop({"stopping": {"plateau": True}}, "either")
  assert not stopping.should_stop({"stopping": {"plateau": True}}, "stabilized")
  assert not stopping.should_stop({"stopping": {"plateau": True}}, "")
  assert "too few rounds" in stopping.stop_reason({"stopping": first})


def test_a_run_ends_on_its_signal_and_goes_on_when_it_is_switched_off(tmp_path):
  from rlmba_jax.experiment import ConfigError, run
  cfg = {"al.rounds": 3, "al.stopping.window": 1, "al.stopping.min_gain": 2.0,
         "al.stopping.set_size": 300, "al.stop_when": "plateau"}
  workdir = str(tmp_path / "w")
  summary = run(make_tiny_config(**cfg), workdir)
  rounds = [json.loads(l) for l in open(os.path.join(workdir, "rounds.jsonl"))]
  # a gain over one round below 2 (200 points) always holds: the run ends after round 1
  assert summary["stopped_at_round"] == 1 and [r["round"] for r in rounds] == [0, 1]
  assert rounds[0]["stopping"]["kappa"] is None and len(rounds[0]["stop_set_predictions"]) == 300
  assert -1 <= rounds[1]["stopping"]["kappa"] <= 1 and rounds[1]["stopping"]["plateau"]
  assert "stop_set_predictions" not in summary["final"]
  run(make_tiny_config(**cfg), workdir)  # the same command: stays stopped
  assert len(open(os.path.join(workdir, "rounds.jsonl")).readlines()) == 2
  summary = run(make_tiny_config(**{**cfg, "al.stop_when": ""}), workdir)  # goes on
  rounds = [json.loads(l) for l in open(os.path.join(workdir, "rounds.jsonl"))]
  assert [r["round"] for r in rounds] == [0, 1, 2, 3] and "stopped_at_round" not in summary
  assert rounds[3]["stopping"]["kappa"] == pytest.approx(cohen_kappa_score(
      rounds[2]["stop_set_predictions"], rounds[3]["stop_set_predictions"]), abs=1e-5)
  with pytest.raises(ConfigError, match="stop_when='plateau' ends a run early"):
    run(make_tiny_config(**cfg), str(tmp_path / "seeds"), seeds="0,1")
  with pytest.raises(ConfigError, match="al.stop_when"):
    run(make_tiny_config(**{**cfg, "al.stop_when": "soon"}), str(tmp_path / "bad"))
