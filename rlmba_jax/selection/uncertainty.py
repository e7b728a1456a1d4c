"""Uncertainty sampling on the fused prediction: entropy, margin, least confidence, BALD,
and their stochastic (power) versions."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from rlmba_jax.fusion import xlogx
from rlmba_jax.selection.base import PoolView, check_view, register, top_scores


def predictive_entropy(probs: jnp.ndarray) -> jnp.ndarray:
  """Shannon entropy -sum_c p_c log p_c of each row. ``[N, C] -> [N]`` (0 log 0 = 0)."""
  chex.assert_rank(probs, 2)
  return -jnp.sum(xlogx(probs), axis=-1)


def margin_uncertainty(probs: jnp.ndarray) -> jnp.ndarray:
  """``1 - (p_(1) - p_(2))``: one minus the gap between the two most likely classes. ``[N]``."""
  chex.assert_rank(probs, 2)
  # Two max-reductions instead of top_k, which XLA:CPU lowers to a sort of every row.
  first = jnp.argmax(probs, axis=-1)
  top = jnp.take_along_axis(probs, first[:, None], axis=-1)[:, 0]
  second = jnp.max(jnp.where(jax.nn.one_hot(first, probs.shape[-1], dtype=bool), -jnp.inf,
                             probs), axis=-1)
  return 1.0 - (top - second)


def least_confidence(probs: jnp.ndarray) -> jnp.ndarray:
  """``1 - max_c p_c`` of each row. ``[N, C] -> [N]``."""
  chex.assert_rank(probs, 2)
  return 1.0 - jnp.max(probs, axis=-1)


def bald_mutual_information(mc_probs: jnp.ndarray) -> jnp.ndarray:
  """BALD score I(y; w | x) = H(E_w p) - E_w H(p) from T stochastic passes (Houlsby et al.).

  ``[T, N, C] -> [N]``, non-negative up to rounding.
  """
  chex.assert_rank(mc_probs, 3)
  mean_entropy = -jnp.mean(jnp.sum(xlogx(mc_probs), axis=-1), axis=0)
  return predictive_entropy(jnp.mean(mc_probs, axis=0)) - mean_entropy


@register("entropy", reads=("probs",))
def entropy_sampling(key: jax.Array, pool: PoolView, budget: int) -> jnp.ndarray:
  """The ``budget`` unlabelled examples of highest predictive entropy (``key`` unused)."""
  del key
  return top_scores(predictive_entropy(pool.probs), ~pool.labelled, budget)


@register("margin", reads=("probs",))
def margin_sampling(key: jax.Array, pool: PoolView, budget: int) -> jnp.ndarray:
  """The ``budget`` unlabelled examples with the smallest top-2 probability gap."""
  del key
  return top_scores(margin_uncertainty(pool.probs), ~pool.labelled, budget)


@register("least_confidence", reads=("probs",))
def least_confidence_sampling(key: jax.Array, pool: PoolView, budget: int) -> jnp.ndarray:
  """The ``budget`` unlabelled examples whose most likely class is least probable."""
  del key
  return top_scores(least_confidence(pool.probs), ~pool.labelled, budget)


@register("bald", needs=("mc_probs",))
def bald_sampling(key: jax.Array, pool: PoolView, budget: int, passes: int = 10
                  ) -> jnp.ndarray:
  """The ``budget`` unlabelled examples of highest BALD mutual information over ``passes``
  MC-dropout forward passes (``pool.mc_probs``)."""
  del key
  check_view(pool, ("mc_probs",), "bald")
  if pool.mc_probs.shape[0] != passes:
    raise ValueError(f"bald expects {passes} dropout passes, the view holds "
                     f"{pool.mc_probs.shape[0]}")
  return top_scores(bald_mutual_information(pool.mc_probs), ~pool.labelled, budget)


def power_sample(key: jax.Array, scores: jnp.ndarray, available: jnp.ndarray, budget: int,
                 beta: float = 1.0) -> jnp.ndarray:
  """``budget`` positions drawn without replacement among ``available`` with probability
  proportional to ``scores ** beta`` (power acquisition, Kirsch et al., "Stochastic Batch
  Acquisition", TMLR 2023): the top ``budget`` of ``beta log s + Gumbel``. ``[N] -> [b]``."""
  chex.assert_equal_shape((scores, available))
  logits = beta * jnp.log(jnp.maximum(scores, jnp.finfo(scores.dtype).tiny))
  return top_scores(logits + jax.random.gumbel(key, scores.shape), available, budget)


@register("power_entropy", reads=("probs",))
def power_entropy_sampling(key: jax.Array, pool: PoolView, budget: int, *,
                           beta: float = 1.0) -> jnp.ndarray:
  """Entropy sampling made stochastic: draws with probability proportional to entropy^beta."""
  return power_sample(key, predictive_entropy(pool.probs), ~pool.labelled, budget, beta)


@register("power_margin", reads=("probs",))
def power_margin_sampling(key: jax.Array, pool: PoolView, budget: int, *,
                          beta: float = 1.0) -> jnp.ndarray:
  """Margin sampling made stochastic: draws with probability proportional to
  ``(1 - (p_(1) - p_(2)))^beta``."""
  return power_sample(key, margin_uncertainty(pool.probs), ~pool.labelled, budget, beta)
