"""RL-MBA's selection step: one pure function for the loop's agent (``policy.agent``) and the
simulated episodes (``policy.episodes``), so the two can never drift apart.

A step scores the round's candidates (``selection.rlmba.score_candidates``: the top
``K = kappa b`` unlabelled examples by q), builds the policy's inputs from them and from the
round's scalars (``policy.inputs``: per modality, or M-invariant), and draws b of them
(Plackett–Luce, Gumbel-top-k; the b best with ``greedy``). The settings are bound once,
optax style::

  step = make_selection_step(network, SelectionSettings.from_options(config.al.rlmba, b))
  picks, transition, candidates = step(params, score_key, draw_key, pool, state_part)
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp

from rlmba_jax import fusion as fusion_lib
from rlmba_jax.policy import inputs as inputs_lib
from rlmba_jax.policy.plackett_luce import gumbel_top_k
from rlmba_jax.policy.reinforce import Transition
from rlmba_jax.selection.base import PoolView
from rlmba_jax.selection.rlmba import score_candidates


class SelectionSettings(NamedTuple):
  """What a selection step is (static).

  Attributes:
    budget: b, picks per round (an episode's largest; ``active_budget`` masks the rest).
    kappa, beta, efda, lloyd_iterations, diversity, difficulty_weight: the candidate
      scoring's (``config.al.rlmba``).
    policy_inputs: ``"per_modality"`` or ``"invariant"`` (``policy.inputs``).
    greedy: the policy's b best instead of a Plackett–Luce draw.
  """
  budget: int
  kappa: int
  beta: float
  efda: bool
  lloyd_iterations: int
  diversity: str
  difficulty_weight: float = 0.0
  policy_inputs: str = "per_modality"
  greedy: bool = False

  @classmethod
  def from_options(cls, options: Mapping[str, Any], budget: int) -> "SelectionSettings":
    """From ``config.al.rlmba`` (a ConfigDict or a dict)."""
    return cls(budget=budget, kappa=options["kappa"], beta=options["beta"],
               efda=options["efda"], lloyd_iterations=options["lloyd_iterations"],
               diversity=options["diversity"],
               difficulty_weight=options.get("difficulty_weight", 0.0),
               policy_inputs=options.get("policy_inputs", "per_modality"),
               greedy=options.get("greedy", False))


def make_selection_step(network, settings: SelectionSettings) -> Callable:
  """RL-MBA's selection step with ``settings`` bound.

  Returns ``step(params, score_key, draw_key, pool, state_part, active_budget=None)`` ->
  ``(picks [b] pool positions in draw order, Transition, candidate positions [K])``:
  ``pool`` a ``PoolView`` with modality alphas; ``state_part`` the round's scalars, a
  ``[6 + M]`` vector (``per_modality``) or the tuple (val top-1, val NLL, val ECE, ``[M]``
  top-1 gaps, relative loss change, grad norm, labelled fraction) (``invariant``);
  ``active_budget`` (traced, at most b): only the first ``kappa * active_budget``
  candidates may be drawn (an episode's own b). Candidates that may not be drawn get zero
  features in the transition.
  """
  s = settings

  def step(params, score_key: jax.Array, draw_key: jax.Array, pool: PoolView, state_part,
           active_budget: jax.Array | None = None):
    candidates = score_candidates(score_key, pool, s.budget, kappa=s.kappa, beta=s.beta,
                                  efda=s.efda, lloyd_iterations=s.lloyd_iterations,
                                  diversity=s.diversity,
                                  difficulty_weight=s.difficulty_weight)
    valid = candidates.valid
    if active_budget is not None:
      valid = valid & (jnp.arange(valid.shape[0]) < s.kappa * active_budget)
    features, round_state = policy_inputs(s.policy_inputs, candidates, pool, state_part)
    features = jnp.where(valid[:, None], features, 0.0)
    logits = network.apply({"params": params}, features, round_state)
    if s.greedy:
      order = jax.lax.top_k(jnp.where(valid, logits, -jnp.inf), s.budget)[1]
    else:
      order = gumbel_top_k(draw_key, logits, s.budget, valid)
    order = order.astype(jnp.int32)
    return (candidates.positions[order], Transition(features, round_state, valid, order),
            candidates.positions)

  return step


def policy_inputs(kind: str, candidates, pool: PoolView, state_part
                  ) -> tuple[jnp.ndarray, jnp.ndarray]:
  """(candidate features ``[K, F]``, round state ``[S]``) the policy reads."""
  if kind != "invariant":
    return candidates.features, jnp.concatenate([state_part, candidates.summary])
  names = pool.names
  weights = (fusion_lib.uniform_weights(len(names)) if pool.modality_weights is None
             else pool.modality_weights)
  top1, nll, ece, gaps, change, grad_norm, fraction = state_part
  round_state = inputs_lib.invariant_round_state(
      top1, nll, ece, gaps, weights, change, grad_norm, fraction, candidates.summary,
      pool.probs.shape[-1])
  return inputs_lib.invariant_candidate_features(candidates.features, len(names)), round_state
