"""Uncertainty sampling on the fused prediction."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from rlmba_jax.selection.base import PoolView, register, top_scores


def predictive_entropy(probs: jnp.ndarray) -> jnp.ndarray:
  """Shannon entropy -sum_c p_c log p_c of each row. ``[N, C] -> [N]`` (0 log 0 = 0)."""
  chex.assert_rank(probs, 2)
  return -jnp.sum(jnp.where(probs > 0, probs * jnp.log(jnp.where(probs > 0, probs, 1.0)), 0.0),
                  axis=-1)


@register("entropy")
def entropy_sampling(key: jax.Array, pool: PoolView, budget: int) -> jnp.ndarray:
  """The ``budget`` unlabelled examples of highest predictive entropy (``key`` unused)."""
  del key
  return top_scores(predictive_entropy(pool.probs), ~pool.labelled, budget)
