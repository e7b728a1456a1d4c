"""The mechanism rows of the comparison: power sampling, U inside q, the prior draw, and the
harder settings' pools (long tail, wrong answers)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlmba_jax import selection
from rlmba_jax.data.loading import harder_pool, long_tail_fractions
from rlmba_jax.data.specs import MultimodalArrays
from rlmba_jax.experiment.config import default_config, validate_config
from rlmba_jax.selection.rlmba import candidate_terms
from rlmba_jax.selection.uncertainty import power_sample


def test_power_sampling_draws_in_proportion_to_score_to_the_power_beta():
  scores = jnp.asarray([3.0, 1.0, 0.0, 2.0])
  available = jnp.asarray([True, True, True, False])
  keys = jax.random.split(jax.random.key(0), 4000)
  draw = jax.jit(jax.vmap(lambda k: power_sample(k, scores, available, 1, 1.0)))
  first = np.asarray(draw(keys))[:, 0]
  share = np.bincount(first, minlength=4) / len(first)
  assert share[0] == pytest.approx(0.75, abs=0.03) and share[2] == 0 and share[3] == 0
  squared = jax.jit(jax.vmap(lambda k: power_sample(k, scores, available, 1, 2.0)))(keys)
  assert np.mean(np.asarray(squared)[:, 0] == 0) == pytest.approx(0.9, abs=0.03)
  picks = np.asarray(power_sample(jax.random.key(1), scores, available, 2))
  assert sorted(picks.tolist()) == [0, 1]  # distinct, the unavailable never


@pytest.mark.parametrize("name", ["power_entropy", "power_margin"])
def test_power_strategies_pick_distinct_unlabelled_examples(name):
  rng = np.random.default_rng(0)
  probs = rng.dirichlet(np.ones(5), 60).astype(np.float32)
  labelled = np.zeros(60, bool)
  labelled[:10] = True
  view = selection.PoolView.from_arrays(probs, labelled=labelled, strategy=name)
  picks = np.asarray(selection.get_strategy(name)(jax.random.key(3), view, 20))
  assert len(set(picks.tolist())) == 20 and not labelled[picks].any()


def _evidential_view(n=80, m=2, c=4, seed=0):
  rng = np.random.default_rng(seed)
  names = tuple(f"m{i}" for i in range(m))
  alphas = {k: 1.0 + rng.gamma(1.0, 2.0, (n, c)).astype(np.float32) for k in names}
  probs = {k: a / a.sum(-1, keepdims=True) for k, a in alphas.items()}
  feats = {k: rng.normal(size=(n, 8)).astype(np.float32) for k in names}
  labelled = np.zeros(n, bool)
  labelled[:5] = True
  return selection.PoolView.from_arrays(
      np.mean(list(probs.values()), 0), probs, feats, labelled, modality_alphas=alphas,
      modality_weights=np.full(m, 1.0 / m, np.float32), modality_names=names)


def test_difficulty_in_q_adds_gamma_times_u():
  view = _evidential_view()
  key = jax.random.key(0)
  plain = candidate_terms(key, view, 10)
  again = candidate_terms(key, view, 10, difficulty_weight=0.0)
  np.testing.assert_array_equal(plain.q, again.q)  # 0: the paper's q, bit for bit
  with_u = candidate_terms(key, view, 10, difficulty_weight=0.7)
  np.testing.assert_allclose(with_u.q, plain.q + 0.7 * plain.difficulty, rtol=1e-6)


def test_mechanism_configs_are_valid():
  c = default_config()
  c.model.head = "evidential"
  c.al.strategy = "rlmba"
  c.al.rlmba.reward = "absolute"
  c.al.rlmba.learning_rate = 0.0  # the prior draw: the policy never moves
  c.al.rlmba.entropy_weight = 0.0
  c.al.rlmba.difficulty_weight = 1.0
  c.data.pool_imbalance, c.data.label_noise = 10.0, 0.1
  validate_config(c)


def test_long_tail_and_wrong_answers():
  fractions = long_tail_fractions(10, 10.0, 0)
  assert fractions.max() == pytest.approx(1.0) and fractions.min() == pytest.approx(0.1)
  labels = np.repeat(np.arange(10), 140).astype(np.int32)
  pool = MultimodalArrays({"x": np.arange(1400, dtype=np.float32)[:, None]}, labels,
                          np.arange(1400))
  cfg = default_config().data
  cfg.pool_imbalance = 10.0
  tail = harder_pool(pool, cfg, 10)
  counts = np.bincount(tail.labels, minlength=10)
  assert counts.max() == 140 and counts.min() == 14
  np.testing.assert_array_equal(tail.ids, harder_pool(pool, cfg, 10).ids)  # seeded
  cfg.pool_imbalance, cfg.label_noise = 1.0, 0.1
  noisy = harder_pool(pool, cfg, 10)
  wrong = noisy.labels != labels
  assert 0.07 < wrong.mean() < 0.13
  np.testing.assert_array_equal(noisy.inputs["x"], pool.inputs["x"])  # only labels change


@pytest.mark.slow
def test_greedy_oracle_picks_the_best_of_its_subsets_the_same_batched_or_not(tmp_path):
  import json
  import os
  from conftest import make_tiny_config, read_ledger, read_rounds
  from rlmba_jax.experiment import ConfigError, run
  cfg = {"model.head": "evidential", "model.fused_head": "softmax",
         "al.strategy": "greedy_oracle", "al.greedy_oracle.subsets": 3, "al.rounds": 1,
         "train.num_epochs": 6, "data.modalities": "fou,kar"}  # two views: half the compiling
  batched = str(tmp_path / "batched")
  run(make_tiny_config(**cfg), batched, seeds="4")  # the batched path, one lane
  single = str(tmp_path / "single")
  run(make_tiny_config(**{**cfg, "seed": 4}), single)
  assert read_ledger(os.path.join(batched, "seed_0004")) == read_ledger(single)
  assert read_rounds(os.path.join(batched, "seed_0004")) == read_rounds(single)
  ledger = read_ledger(single)
  assert len(set(ledger[1]["ids"])) == 10 and not set(ledger[1]["ids"]) & set(ledger[0]["ids"])
  # The best of 3: its first subset is the only one of subsets=1 (the same draws), and the
  # round trains as the oracle did, so the kept subset validates at least as well.
  one = str(tmp_path / "one")
  run(make_tiny_config(**{**cfg, "seed": 4, "al.greedy_oracle.subsets": 1}), one)
  assert read_rounds(single)[1]["val_top1"] >= read_rounds(one)[1]["val_top1"]
  assert read_ledger(one)[0] == ledger[0]
  # from the whole pool too; and never with a person
  run(make_tiny_config(**{**cfg, "al.greedy_oracle.source": "pool",
                          "al.greedy_oracle.subsets": 1}), str(tmp_path / "pool"))
  with pytest.raises(ConfigError, match="greedy_oracle.* person"):
    run(make_tiny_config(**{**cfg, "al.oracle": "person"}), str(tmp_path / "p"))
  assert json.load(open(os.path.join(single, "config.json")))["al"]["strategy"] == "greedy_oracle"
