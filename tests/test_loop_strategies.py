"""Every baseline strategy drives the real loop on mfeat (two selection rounds each)."""

import json
import os

import pytest

from rlmba_jax.experiment import loop

from conftest import make_tiny_config

pytestmark = pytest.mark.slow  # every strategy end to end


def _ledger(workdir):
  with open(os.path.join(workdir, "ledger.jsonl")) as f:
    return [json.loads(l)["ids"] for l in f]


@pytest.mark.parametrize("strategy,overrides", [
    ("margin", {}),
    ("least_confidence", {}),
    ("bald", {"al.bald.passes": 4}),
    ("coreset", {}),
    ("kmeans", {}),
    ("badge", {}),
    ("bmmal", {"model.head": "evidential", "model.fusion": "evidence"}),
    ("deepfool", {"model.head": "evidential", "model.fusion": "tmc"}),
    ("gcnal", {"al.gcnal.epochs": 30}),
    ("gcnal", {"al.gcnal.epochs": 30, "al.gcnal.method": "uncertaingcn"}),
])
def test_strategy_runs_two_rounds_on_mfeat(strategy, overrides, tmp_path):
  # The tiny config's own epochs: its training program is then compiled once for the
  # whole suite (the persistent cache is shared), not once more for this file.
  config = make_tiny_config(**{"al.strategy": strategy, **overrides})
  summary = loop.run(config, str(tmp_path))
  ledger = _ledger(tmp_path)
  assert [len(ids) for ids in ledger] == [20, 10, 10]
  flat = [i for ids in ledger for i in ids]
  assert len(set(flat)) == len(flat)
  assert summary["num_labeled"] == [20, 30, 40] and summary["strategy"] == strategy
  assert all(0.0 <= t <= 1.0 for t in summary["test_top1"])


def test_bald_with_its_dropout_passes_is_reproducible(tmp_path):
  config = make_tiny_config(**{"al.strategy": "bald", "al.bald.passes": 4,
                               "al.rounds": 1})
  loop.run(config, str(tmp_path / "a"))
  loop.run(config.copy_and_resolve_references(), str(tmp_path / "b"))
  assert _ledger(tmp_path / "a") == _ledger(tmp_path / "b")
