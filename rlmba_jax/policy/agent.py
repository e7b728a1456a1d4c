"""RL-MBA's learning selector as the experiment loop runs it (docs/experiments.md, "RL-MBA": candidates, policy, reward).

``RLMBAAgent`` ties RL-MBA's selection step (``policy.selection_step``: candidate scoring, the
policy network, Plackett–Luce draws; the same step the simulated episodes run) and REINFORCE
together with the round state and the reward. Everything it keeps between
rounds is a ``PolicyState`` (checkpointed with the round), so a resumed run is exact.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rlmba_jax.config_choices import REWARDS
from rlmba_jax.policy import inputs as inputs_lib
from rlmba_jax.policy.network import CandidatePolicy
from rlmba_jax.policy.reinforce import (PolicyState, Transition, reinforce_init, reinforce_state,
                                        reinforce_update)
from rlmba_jax.policy.selection_step import SelectionSettings, make_selection_step
from rlmba_jax.selection.base import PoolView


class ReferenceRunError(ValueError):
  pass


def reference_file(path: str, seed: int | None = None) -> str:
  """The ``rounds.jsonl`` of seed ``seed`` that a reference path names: ``{seed}`` in it is
  replaced; a workdir of one run, or a rounds.jsonl file, is itself; a seed-batched
  workdir, or a sweep entry's folder (``seed<k>/`` runs or seed blocks holding
  ``seed_NNNN/``), gives that seed's run. A ``ReferenceRunError`` when there is none."""
  if seed is not None:
    path = path.replace("{seed}", str(seed))
  if not os.path.isdir(path):
    if os.path.exists(path):
      return path
  elif os.path.exists(os.path.join(path, "rounds.jsonl")):
    return os.path.join(path, "rounds.jsonl")
  elif seed is not None:
    single = os.path.join(path, f"seed{int(seed)}", "rounds.jsonl")  # a sweep's entry
    if os.path.exists(single):
      return single
    folder = f"seed_{int(seed):04d}"
    for candidate in [path] + sorted(os.path.join(path, d) for d in os.listdir(path)):
      file = os.path.join(candidate, folder, "rounds.jsonl")
      if os.path.exists(file):
        return file
  raise ReferenceRunError(
      f"reference run {path!r} has no rounds.jsonl"
      + (f" for seed {seed}" if seed is not None else "")
      + "; run the reference strategy first (with the same seeds) or fix "
      "config.al.rlmba.reference_runs")


def load_reference_curves(paths: Sequence[str], metric: str = "val_top1",
                          seed: int | None = None) -> dict[int, float]:
  """``{num_labeled: mean metric}`` over the reference runs of seed ``seed`` (workdirs,
  seed-batched workdirs or rounds.jsonl files; ``reference_file``)."""
  curves = []
  for path in paths:
    file = reference_file(path, seed)
    with open(file) as f:
      try:
        records = [json.loads(line) for line in f if line.strip()]
      except json.JSONDecodeError as e:
        raise ReferenceRunError(f"{file} is not valid JSON lines ({e})") from e
    curves.append({int(r["num_labeled"]): float(r[metric]) for r in records})
  counts = set.intersection(*(set(c) for c in curves)) if curves else set()
  return {n: float(np.mean([c[n] for c in curves])) for n in sorted(counts)}


def record_state(previous: Mapping[str, Any], names: Sequence[str], labelled_fraction: float
                 ) -> np.ndarray:
  """The round-state part read from the previous round's record: ``[6 + M]``.

  [val top-1, log(1 + val NLL), val ECE, Delta_1..Delta_M (top-1 gaps), loss slope over the
  last quarter of epochs, log(1 + last-epoch gradient norm), labelled fraction]; the logs
  keep unbounded quantities in the range of the others.
  """
  curve = np.asarray(previous["train_loss_curve"], np.float64)
  k = max(1, len(curve) // 4)
  slope = (curve[-1] - curve[-1 - k]) / k if len(curve) > k else 0.0
  gaps = [previous["top1_gap"][m] for m in names]
  return np.asarray([previous["val_top1"], np.log1p(previous["val_nll"]), previous["val_ece"],
                     *gaps, slope, np.log1p(previous["train_grad_norm"]), labelled_fraction],
                    np.float32)


def record_scalars(previous: Mapping[str, Any], names: Sequence[str], labelled_fraction: float
                   ) -> tuple[np.ndarray, ...]:
  """What ``inputs.invariant_round_state`` reads from the previous round's record:
  (val top-1, val NLL, val ECE, ``[M]`` Delta, relative loss change, grad norm, labelled
  fraction) as float32 arrays."""
  curve = np.asarray(previous["train_loss_curve"], np.float32)
  as32 = lambda x: np.asarray(x, np.float32)
  return (as32(previous["val_top1"]), as32(previous["val_nll"]), as32(previous["val_ece"]),
          as32([previous["top1_gap"][m] for m in names]),
          as32(inputs_lib.relative_loss_change(curve)),
          as32(previous["train_grad_norm"]), as32(labelled_fraction))


class RLMBAAgent:
  """Selection and learning for ``al.strategy = "rlmba"`` with ``al.rlmba.policy = True``.

  Args:
    options: ``config.al.rlmba`` as a dict.
    names: the M modality names.
    budget: picks per round b.
    pool_size: N.
    seeds: an ``experiment.seeds.SeedBatch`` for a seed-batched run: the policy state, keys
      and views then carry a leading seed axis, ``select`` and ``update`` take one record
      and one reward per seed, and their programs are the single agent's mapped over the
      seeds. None: one run.
  """

  def __init__(self, options: Mapping[str, Any], names: Sequence[str], budget: int,
               pool_size: int, seeds=None):
    self.seeds = seeds if seeds is not None and seeds.batched else None
    self.options = dict(options)
    self.names = tuple(names)
    self.budget = budget
    self.num_candidates = min(self.options["kappa"] * budget, pool_size)
    self.inputs = self.options.get("policy_inputs", "per_modality")
    self.feature_dim, self.state_dim = inputs_lib.input_dims(self.inputs, len(names))
    self.network = CandidatePolicy(tuple(self.options["hidden"]),
                                   self.options["prior_temperature"])
    self.optimizer = optax.adam(self.options["learning_rate"])
    self._select = jax.jit(make_selection_step(
        self.network, SelectionSettings.from_options(self.options, budget)))
    self._update = jax.jit(functools.partial(
        reinforce_update, network=self.network, optimizer=self.optimizer,
        baseline_momentum=self.options["baseline_momentum"],
        advantage_clip=self.options["advantage_clip"],
        entropy_weight=self.options["entropy_weight"]))
    if self.seeds is not None:
      self._select = self.seeds.map(self._select, (0, 0, 0, 0, 0))
      self._update = self.seeds.map(self._update, (0, 0, 0))

  def init(self, key: jax.Array) -> PolicyState:
    """The policy before any update (``key``: one per seed in a seed-batched agent)."""
    def one(k):
      return reinforce_init(k, self.network, self.optimizer, self.num_candidates,
                            self.feature_dim, self.state_dim)
    return one(key) if self.seeds is None else self.seeds.each(one, key)

  def start_from(self, params) -> PolicyState:
    """A policy state with given (e.g. pretrained) parameters: a fresh optimiser, baseline
    and update count, so the online REINFORCE starts from them (every seed from the same
    parameters in a seed-batched agent)."""
    state = reinforce_state(params, self.optimizer)
    return state if self.seeds is None else self.seeds.tile(state)

  def select(self, policy: PolicyState, score_key: jax.Array, draw_key: jax.Array,
             pool: PoolView, previous_record, labelled_fraction):
    """-> (``[b]`` pool positions in draw order, the ``Transition`` to learn from, the
    ``[K]`` candidate positions); each with a leading seed axis in a seed-batched agent,
    which takes a list of previous records and labelled fractions, one per seed."""
    if self.seeds is None:
      return self._select(policy.params, score_key, draw_key, pool,
                          self._state_part(previous_record, labelled_fraction))
    parts = [self._state_part(r, f) for r, f in zip(previous_record, labelled_fraction)]
    return self._select(policy.params, score_key, draw_key, pool, self.seeds.stack(parts))

  def _state_part(self, previous_record: Mapping[str, Any], labelled_fraction: float):
    if self.inputs == "invariant":
      return tuple(jnp.asarray(x) for x in record_scalars(
          previous_record, self.names, labelled_fraction))
    return jnp.asarray(record_state(previous_record, self.names, labelled_fraction))

  @staticmethod
  def order_for(candidate_positions: np.ndarray, ledger_positions: np.ndarray
                ) -> np.ndarray | None:
    """``[b]`` int32 candidate indices of positions already in the ledger (a run resumed on
    other hardware may draw differently); None if some are not candidates."""
    index = {int(p): i for i, p in enumerate(candidate_positions)}
    if not all(int(p) in index for p in ledger_positions):
      return None
    return np.asarray([index[int(p)] for p in ledger_positions], np.int32)

  @staticmethod
  def transition_for(transition: Transition, candidate_positions: np.ndarray,
                     ledger_positions: np.ndarray) -> Transition | None:
    """The transition with ``order`` rebuilt from positions already in the ledger; None if
    some are not candidates."""
    order = RLMBAAgent.order_for(candidate_positions, ledger_positions)
    return None if order is None else transition._replace(order=jnp.asarray(order))

  def reward(self, record: Mapping[str, Any], history: Sequence[Mapping[str, Any]],
             references: Mapping[int, float] | None) -> float:
    """The raw reward of the round that produced ``record`` (before EMA smoothing)."""
    kind = self.options["reward"]
    top1 = float(record["val_top1"])
    if kind == "relative":
      n = int(record["num_labeled"])
      if not references or n not in references:
        raise ReferenceRunError(f"no reference val_top1 at {n} labels for the relative reward")
      value = top1 - references[n]
    elif kind == "incremental":
      value = top1 - float(history[-1]["val_top1"])
    else:
      value = top1
    return value + self.options["balance_weight"] * float(record["balance"])

  def update(self, policy: PolicyState, transition: Transition, raw_reward):
    """One REINFORCE step on the (EMA-smoothed) reward -> (policy, its log). A seed-batched
    agent takes a list of rewards, one per seed, and returns a list of logs."""
    ema = self.options["reward_ema"]
    rewards = [raw_reward] if self.seeds is None else list(raw_reward)
    counts, lasts = jax.device_get((policy.num_updates, policy.last_reward))
    counts, lasts = np.reshape(counts, -1), np.reshape(lasts, -1)
    smoothed = [jnp.float32(r if int(n) == 0 else ema * float(last) + (1.0 - ema) * r)
                for r, n, last in zip(rewards, counts, lasts)]
    smoothed = smoothed[0] if self.seeds is None else self.seeds.stack(smoothed)
    policy, info = self._update(policy, transition, smoothed)
    infos = [info] if self.seeds is None else self.seeds.split(info)
    logs = [{"raw_reward": r, "reward": float(i.reward), "baseline": float(i.baseline),
             "advantage": float(i.advantage), "log_prob": float(i.log_prob),
             "entropy": float(i.entropy), "grad_norm": float(i.grad_norm)}
            for r, i in zip(rewards, infos)]
    return policy, (logs[0] if self.seeds is None else logs)
