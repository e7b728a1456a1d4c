"""A greedy oracle: how much better could any policy over RL-MBA's candidates pick?

``al.strategy = "greedy_oracle"`` (CDALBench's idea) is an upper bound, never a method: each
round it draws ``al.greedy_oracle.subsets`` random subsets of b examples from RL-MBA's top
kappa b candidates (``source="candidates"``, scored with ``config.al.rlmba``'s values) or
from the whole unlabelled pool (``source="pool"``), trains the classifier on the labelled
set plus each subset exactly as the round will train (the round's own initialisation and
training keys), and keeps the subset with the best validation top-1. It reads labels no
learner has (the subsets' pool labels, the validation labels to choose), so its curve is
headroom: what the best of many draws from the same candidates reaches. The subsets of a
seed are trained in one compiled program (``jax.lax.map`` over subsets, as seeds are).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rlmba_jax.config_choices import GREEDY_ORACLE as ORACLE
from rlmba_jax.config_choices import GREEDY_ORACLE_SOURCES as SOURCES
from rlmba_jax.selection.rlmba import score_candidates
from rlmba_jax.train import TrainState, top1


def _subset_program(trainer, num_subsets: int):
  """``(init_key, train_key, labelled [N], subsets [K, b], weights, val_inputs,
  val_labels) -> [K]`` validation top-1 after training on each subset added."""
  cache = trainer.__dict__.setdefault("_oracle_programs", {})
  if num_subsets in cache:
    return cache[num_subsets]

  @jax.jit
  def program(init_key, train_key, labelled, subsets, weights, inputs, labels, val_inputs,
              val_labels):
    def one(subset):
      variables = trainer._init_variables(init_key, trainer.example(inputs))  # pylint: disable=protected-access
      params = variables["params"]
      model_state = {k: v for k, v in variables.items() if k != "params"}
      state = TrainState(params, trainer._init_optimizer(params), model_state)  # pylint: disable=protected-access
      state, _ = trainer._train_jit(state, train_key, inputs, labels,  # pylint: disable=protected-access
                                    labelled.at[subset].set(True), weights)
      out = trainer._predict_jit(state.params, val_inputs, weights, state.model_state)  # pylint: disable=protected-access
      return top1(out["fused_probs"], val_labels)
    return jax.lax.map(one, subsets)

  cache[num_subsets] = program
  return program


def oracle_positions(env, state, r: int, keys: dict[str, Any], view, init_keys,
                     train_keys) -> list[np.ndarray]:
  """Each seed's best subset (``[b]`` pool positions) of round ``r`` (see the module)."""
  config, seeds = env.config, env.seeds
  options, rl = config.al.greedy_oracle, config.al.rlmba
  budget, count = config.al.budget_per_round, int(options.subsets)
  trainer = getattr(env.trainer, "per_seed", env.trainer)
  program = _subset_program(trainer, count)
  val_inputs, val_labels = env.evals["val"]
  picked = []
  for i, seed in enumerate(seeds.seeds):
    one_view = seeds.take(view, i)
    labelled = seeds.take(state.labelled, i)
    if options.source == "candidates":
      candidates = score_candidates(
          seeds.take(keys["select"], i), one_view, budget, kappa=rl.kappa, beta=rl.beta,
          efda=rl.efda, lloyd_iterations=rl.lloyd_iterations, diversity=rl.diversity,
          difficulty_weight=rl.difficulty_weight)
      pool = np.asarray(jax.device_get(candidates.positions))[
          np.asarray(jax.device_get(candidates.valid))]
    else:
      pool = np.flatnonzero(~np.asarray(jax.device_get(labelled)))
    rng = np.random.default_rng([int(seed), int(r), 61])
    subsets = np.stack([rng.choice(pool, budget, replace=False) for _ in range(count)])
    scores = np.asarray(jax.device_get(program(
        seeds.take(init_keys, i), seeds.take(train_keys, i), labelled,
        jnp.asarray(subsets, jnp.int32), seeds.take(state.modality_weights.weights, i),
        env.pool_inputs, env.pool_labels, val_inputs, val_labels)))
    picked.append(subsets[int(np.argmax(scores))].astype(np.int32))
  return picked


@functools.cache
def view_needs() -> frozenset[str]:
  """What the oracle's view holds: RL-MBA's (evidential heads, modality weights)."""
  from rlmba_jax import selection  # pylint: disable=g-import-not-at-top
  return selection.strategy_needs("rlmba")
