"""Uniform random sampling."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rlmba_jax.selection.base import PoolView, register, top_scores


@register("random")
def random_sampling(key: jax.Array, pool: PoolView, budget: int) -> jnp.ndarray:
  """``budget`` unlabelled examples drawn uniformly without replacement."""
  scores = jax.random.uniform(key, pool.labelled.shape)
  return top_scores(scores, ~pool.labelled, budget)
