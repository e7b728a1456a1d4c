r"""Pretraining the selection policy on simulated episodes (``policy.episodes``), REINFORCE.

Each update simulates a batch of B episodes with the current policy and takes one Adam step
on

    L(theta) = -1/n sum_{e, t < R_e} (r_{e,t} - rbar_t) log p_theta(o_{e,t}) - eta H_{e,t}

where ``o_{e,t}`` is round t's ordered draw of the episode's b_e candidates (only its first
b_e places count), ``r_{e,t}`` the relative reward of that draw, ``rbar_t`` the batch mean
of the round-t rewards (the baseline; it sees the same round of other episodes, so it removes
what the round number alone explains) and ``H`` the first-draw entropy. Every key is folded in
from the seed and the update number, so a pretraining killed and resumed from its latest
checkpoint ends with the same parameters as one run straight through.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from rlmba_jax.policy import inputs as inputs_lib
from rlmba_jax.policy.episodes import (EpisodeOutcome, EpisodeSource, EpisodeSpec,
                                       simulate_episodes)
from rlmba_jax.policy.network import CandidatePolicy
from rlmba_jax.policy.plackett_luce import first_draw_entropy, plackett_luce_log_prob


class PretrainState(NamedTuple):
  params: Any
  opt_state: Any
  step: jnp.ndarray  # int32, updates done


class PretrainInfo(NamedTuple):
  """Per-update figures (scalars)."""
  reward: jnp.ndarray  # mean relative reward over active rounds
  policy_gain: jnp.ndarray  # mean final val top-1 of the policy minus the references'
  log_prob: jnp.ndarray
  entropy: jnp.ndarray
  grad_norm: jnp.ndarray


def make_policy(hidden, prior_temperature: float) -> CandidatePolicy:
  return CandidatePolicy(tuple(hidden), prior_temperature)


def pretrain_init(key: jax.Array, network: CandidatePolicy,
                  optimizer: optax.GradientTransformation) -> PretrainState:
  """A fresh policy (zero correction: the prior softmax(q / T)) over the invariant inputs."""
  params = network.init(key, jnp.zeros((2, inputs_lib.INVARIANT_FEATURE_DIM)),
                        jnp.zeros((inputs_lib.INVARIANT_STATE_DIM,)))["params"]
  return PretrainState(params, optimizer.init(params), jnp.zeros((), jnp.int32))


def episode_advantages(outcome: EpisodeOutcome) -> jnp.ndarray:
  """``r_{e,t} - rbar_t`` over the batch (``[B, R_max]``, 0 on inactive rounds)."""
  active = outcome.active.astype(jnp.float32)
  baseline = jnp.sum(outcome.rewards * active, 0) / jnp.maximum(jnp.sum(active, 0), 1.0)
  return (outcome.rewards - baseline) * active


def pretrain_loss(params, network: CandidatePolicy, outcome: EpisodeOutcome,
                  entropy_weight: float):
  """The loss of the module docstring over a batch of episodes -> (loss, (log p, H))."""
  advantages = jax.lax.stop_gradient(episode_advantages(outcome))
  t = outcome.transitions

  def one(features, state, valid, order, budget):
    logits = network.apply({"params": params}, features, state)
    return (plackett_luce_log_prob(logits, order, valid, length=budget),
            first_draw_entropy(logits, valid))

  per_round = jax.vmap(one, in_axes=(0, 0, 0, 0, None))
  log_prob, entropy = jax.vmap(per_round)(t.candidate_features, t.round_state, t.valid,
                                          t.order, outcome.budget)
  active = outcome.active.astype(jnp.float32)
  n = jnp.maximum(jnp.sum(active), 1.0)
  loss = -jnp.sum(advantages * log_prob) / n - entropy_weight * jnp.sum(active * entropy) / n
  return loss, (jnp.sum(active * log_prob) / n, jnp.sum(active * entropy) / n)


def pretrain_step(state: PretrainState, source: EpisodeSource, keys: jax.Array, *,
                  spec: EpisodeSpec, network: CandidatePolicy,
                  optimizer: optax.GradientTransformation, entropy_weight: float
                  ) -> tuple[PretrainState, PretrainInfo]:
  """Simulates ``keys [B]`` episodes with the current policy, then one policy update."""
  outcome = simulate_episodes(spec, network, state.params, source, keys)
  (_, (log_prob, entropy)), grads = jax.value_and_grad(pretrain_loss, has_aux=True)(
      state.params, network, outcome, entropy_weight)
  updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  active = outcome.active.astype(jnp.float32)
  reward = jnp.sum(outcome.rewards) / jnp.maximum(jnp.sum(active), 1.0)
  gain = jnp.mean(outcome.policy_top1[:, -1] - jnp.mean(outcome.reference_top1[:, :, -1], 1))
  info = PretrainInfo(reward, gain, log_prob, entropy, optax.tree.norm(grads))
  return PretrainState(params, opt_state, state.step + 1), info


def episode_keys(seed: int, step: jnp.ndarray, batch: int) -> jax.Array:
  """The ``[B]`` episode keys of update ``step`` (a pure function of seed and step)."""
  return jax.random.split(jax.random.fold_in(jax.random.key(seed), step), batch)


def jitted_simulation(spec: EpisodeSpec, network: CandidatePolicy):
  """``(params, source, keys [B]) -> EpisodeOutcome``, jitted (no policy update)."""
  return jax.jit(functools.partial(simulate_episodes, spec, network))


def jitted_step(spec: EpisodeSpec, network: CandidatePolicy,
                optimizer: optax.GradientTransformation, entropy_weight: float):
  return jax.jit(functools.partial(pretrain_step, spec=spec, network=network,
                                   optimizer=optimizer, entropy_weight=entropy_weight))
