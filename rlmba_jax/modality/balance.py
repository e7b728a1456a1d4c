"""A modality-balance score in [0, 1]: 1 when every modality contributes equally.

The paper speaks of "modality fairness" without a formula. We use the effective number of
contributing modalities: with shares ``p_m = max(phi_m, 0) / sum_k max(phi_k, 0)`` of the
positive contributions ``phi`` (Shapley values), ``balance = (exp(H(p)) - 1) / (M - 1)``,
where ``H`` is the Shannon entropy. ``exp(H)`` counts how many modalities effectively carry
the prediction (1 ... M), so the score is 0 when one modality carries everything, 1 when all
carry equal shares, and moves linearly in the number of equally used modalities (k of M
equal: ``(k - 1) / (M - 1)``). Modalities that hurt (negative contribution) count as
contributing nothing; if no modality contributes positively the score is 0.
"""

from __future__ import annotations

import chex
import jax.numpy as jnp

from rlmba_jax.fusion import xlogx


def modality_balance(contributions: jnp.ndarray) -> jnp.ndarray:
  """``[M] -> []`` in [0, 1]; see the module docstring. M = 1 gives 1."""
  chex.assert_rank(contributions, 1)
  m = contributions.shape[0]
  if m == 1:
    return jnp.ones((), jnp.float32)
  positive = jnp.maximum(contributions, 0.0)
  total = jnp.sum(positive)
  p = positive / jnp.where(total > 0, total, 1.0)
  entropy = -jnp.sum(xlogx(p))
  score = (jnp.exp(entropy) - 1.0) / (m - 1)
  return jnp.where(total > 0, jnp.clip(score, 0.0, 1.0), 0.0)
