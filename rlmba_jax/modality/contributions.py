"""How much each modality contributes to the fused prediction.

* ``top1_gap``: RL-MBA/AMCB's signal ``Delta_m = top1(head_m) - top1(fused)``.
* Exact Shapley values over all ``2^M`` modality subsets (M <= 8). The caller evaluates the
  fused head on every subset (``coalition_masks`` says which modalities each subset keeps;
  absent modalities are masked out) and ``shapley_values`` turns those values into each
  modality's contribution, per sample or averaged.
"""

from __future__ import annotations

import math

import chex
import jax.numpy as jnp
import numpy as np

MAX_SHAPLEY_MODALITIES = 8


def top1_gap(modality_top1: jnp.ndarray, fused_top1: jnp.ndarray) -> jnp.ndarray:
  """``Delta_m = top1(head_m) - top1(fused)``. ``[M], [] -> [M]``."""
  chex.assert_rank(modality_top1, 1)
  chex.assert_rank(fused_top1, 0)
  return modality_top1 - fused_top1


def coalition_masks(num_modalities: int) -> np.ndarray:
  """``[2^M, M]`` bool: row ``s`` keeps modality ``m`` iff bit ``m`` of ``s`` is set.

  Row 0 is the empty coalition, row ``2^M - 1`` the full one.
  """
  if not 1 <= num_modalities <= MAX_SHAPLEY_MODALITIES:
    raise ValueError(f"exact Shapley values take 1 to {MAX_SHAPLEY_MODALITIES} modalities "
                     f"(2^M subsets); got M={num_modalities}")
  subsets = np.arange(2 ** num_modalities)[:, None]
  return (subsets >> np.arange(num_modalities)[None, :]) & 1 == 1


def shapley_weights(num_modalities: int) -> np.ndarray:
  """``[M, 2^M]`` matrix ``W`` with ``phi = W @ v`` for subset values ``v [2^M]``.

  ``phi_m = sum_{S not containing m} |S|! (M - |S| - 1)! / M! * (v(S + m) - v(S))``.
  """
  masks = coalition_masks(num_modalities)
  m_total = num_modalities
  sizes = masks.sum(axis=1)
  weights = np.zeros((m_total, 2 ** m_total))
  for m in range(m_total):
    for s in range(2 ** m_total):
      if masks[s, m]:
        continue
      k = sizes[s]
      coef = math.factorial(k) * math.factorial(m_total - k - 1) / math.factorial(m_total)
      weights[m, s | (1 << m)] += coef
      weights[m, s] -= coef
  return weights


def shapley_values(subset_values: jnp.ndarray) -> jnp.ndarray:
  """Exact Shapley values from the value of every coalition.

  Args:
    subset_values: ``[2^M, ...]`` value of each coalition (ordered as ``coalition_masks``),
      e.g. ``[2^M, B]`` per-sample probabilities of the true class.

  Returns:
    ``[M, ...]``; ``sum_m phi_m = v(all) - v(none)`` (efficiency).
  """
  num_subsets = subset_values.shape[0]
  num_modalities = int(round(math.log2(num_subsets)))
  if 2 ** num_modalities != num_subsets:
    raise ValueError(f"expected 2^M coalition values on axis 0, got {num_subsets}")
  weights = jnp.asarray(shapley_weights(num_modalities), subset_values.dtype)
  return jnp.tensordot(weights, subset_values, axes=1)
