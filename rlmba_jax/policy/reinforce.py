r"""REINFORCE for the selection policy, as an ``(init, update)`` pair with NamedTuple state.

Each round's ordered draw ``o`` of b candidates is one action; after retraining, its reward r
gives the update

    L(theta) = -clip(r - baseline) * log p_theta(o | candidates, s_t) - eta * H(first draw)

with a moving-average baseline ``baseline <- m * baseline + (1 - m) * r`` (the first reward
initialises it) and optional advantage clipping.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from rlmba_jax.policy.plackett_luce import first_draw_entropy, plackett_luce_log_prob


class Transition(NamedTuple):
  """What the update needs from one round's selection."""
  candidate_features: jnp.ndarray  # [K, F]
  round_state: jnp.ndarray  # [S]
  valid: jnp.ndarray  # [K] bool
  order: jnp.ndarray  # [b] int32, indices into the candidates, in draw order


class PolicyState(NamedTuple):
  params: Any
  opt_state: Any
  baseline: jnp.ndarray  # scalar
  num_updates: jnp.ndarray  # int32 scalar
  last_reward: jnp.ndarray  # scalar, the smoothed reward of the latest update


class UpdateInfo(NamedTuple):
  reward: jnp.ndarray
  baseline: jnp.ndarray  # the baseline the advantage was taken against
  advantage: jnp.ndarray
  log_prob: jnp.ndarray
  entropy: jnp.ndarray
  grad_norm: jnp.ndarray


def reinforce_init(key: jax.Array, network, optimizer: optax.GradientTransformation,
                   num_candidates: int, feature_dim: int, state_dim: int) -> PolicyState:
  params = network.init(key, jnp.zeros((num_candidates, feature_dim)),
                        jnp.zeros((state_dim,)))["params"]
  return reinforce_state(params, optimizer)


def reinforce_state(params: Any, optimizer: optax.GradientTransformation) -> PolicyState:
  """The state before any update for given parameters (fresh or pretrained): a fresh
  optimiser state, no baseline, no updates."""
  return PolicyState(params, optimizer.init(params), jnp.zeros(()), jnp.zeros((), jnp.int32),
                     jnp.zeros(()))


def reinforce_loss(logits: jnp.ndarray, order: jnp.ndarray, valid: jnp.ndarray,
                   advantage: jnp.ndarray, entropy_weight: float
                   ) -> tuple[jnp.ndarray, tuple[jnp.ndarray, jnp.ndarray]]:
  """``-sg(advantage) * log p(order) - eta * H(first draw)`` of one Plackett-Luce draw.

  Args:
    logits: ``[K]`` the policy's candidate scores.
    order: ``[b]`` int32 candidate indices in draw order.
    valid: ``[K]`` bool, the candidates that could be drawn.
    advantage: scalar; its gradient is stopped here (as rlax's policy-gradient losses do).
    entropy_weight: eta.

  Returns:
    (loss, (log p(order), first-draw entropy)), all scalars.
  """
  chex.assert_rank([logits, order, valid, advantage], [1, 1, 1, 0])
  chex.assert_equal_shape([logits, valid])
  log_prob = plackett_luce_log_prob(logits, order, valid)
  entropy = first_draw_entropy(logits, valid)
  advantage = jax.lax.stop_gradient(advantage)
  return -advantage * log_prob - entropy_weight * entropy, (log_prob, entropy)


def reinforce_update(state: PolicyState, transition: Transition, reward: jnp.ndarray, *,
                     network, optimizer: optax.GradientTransformation,
                     baseline_momentum: float = 0.9, advantage_clip: float = 0.0,
                     entropy_weight: float = 0.0) -> tuple[PolicyState, UpdateInfo]:
  """One policy-gradient step on ``transition`` with scalar ``reward``.

  ``advantage_clip`` > 0 clips the advantage to ``[-clip, clip]``.
  """
  reward = jnp.asarray(reward, jnp.float32)
  baseline = jnp.where(state.num_updates == 0, reward, state.baseline)
  advantage = reward - baseline
  if advantage_clip > 0:
    advantage = jnp.clip(advantage, -advantage_clip, advantage_clip)

  def loss(params):
    logits = network.apply({"params": params}, transition.candidate_features,
                           transition.round_state)
    return reinforce_loss(logits, transition.order, transition.valid, advantage,
                          entropy_weight)

  (_, (log_prob, entropy)), grads = jax.value_and_grad(loss, has_aux=True)(state.params)
  updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  new_baseline = baseline_momentum * baseline + (1.0 - baseline_momentum) * reward
  grad_norm = optax.tree.norm(grads)
  info = UpdateInfo(reward, baseline, advantage, log_prob, entropy, grad_norm)
  return PolicyState(params, opt_state, new_baseline, state.num_updates + 1, reward), info
