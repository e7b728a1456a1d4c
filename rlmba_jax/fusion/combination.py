"""Combining per-modality Dirichlet opinions.

* ``ds_combine`` / ``ds_combine_many``: the reduced Dempster-Shafer combination of Trusted
  Multi-View Classification (Han et al., ICLR 2021, eq. 6-7), for two opinions and folded
  over M modalities.
* ``weighted_evidence_fusion``: RL-MBA's fusion ``alpha_f = 1 + sum_m w_m (alpha_m - 1)``.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from rlmba_jax.fusion.dirichlet import MAX_EVIDENCE

_TINY = 1e-30


def ds_combine(b1: jnp.ndarray, u1: jnp.ndarray, b2: jnp.ndarray, u2: jnp.ndarray
               ) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Reduced Dempster-Shafer combination of two opinions (TMC eq. 6-7).

  With conflict ``K = sum_{i != j} b1_i b2_j``:
  ``b = (b1 * b2 + b1 * u2 + b2 * u1) / (1 - K)`` and ``u = u1 * u2 / (1 - K)``.

  ``1 - K`` is evaluated as ``u1 + u2 - u1 u2 + sum_i b1_i b2_i`` (equal, since
  ``sum b = 1 - u``), a sum of non-negative terms, so no cancellation occurs even when the
  two opinions are confident and disagree.

  Args:
    b1, b2: ``[..., C]`` belief masses.
    u1, u2: ``[...]`` uncertainty masses.

  Returns:
    ``(b [..., C], u [...])``, again with ``sum b + u = 1``.
  """
  chex.assert_equal_shape((b1, b2))
  chex.assert_equal_shape((u1, u2))
  agreement = jnp.sum(b1 * b2, axis=-1)
  scale = jnp.maximum(u1 + u2 - u1 * u2 + agreement, _TINY)  # = 1 - conflict
  b = (b1 * b2 + b1 * u2[..., None] + b2 * u1[..., None]) / scale[..., None]
  u = u1 * u2 / scale
  return b, u


def conflict(b1: jnp.ndarray, b2: jnp.ndarray) -> jnp.ndarray:
  """Conflict ``K = sum_{i != j} b1_i b2_j = (sum b1)(sum b2) - sum_i b1_i b2_i``."""
  return jnp.sum(b1, -1) * jnp.sum(b2, -1) - jnp.sum(b1 * b2, -1)


def ds_combine_many(beliefs: jnp.ndarray, uncertainties: jnp.ndarray
                    ) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Folds ``ds_combine`` over the leading modality axis: ``[M, ..., C], [M, ...]``.

  The reduced combination is commutative and associative, so the order does not matter.
  """
  def step(carry, opinion):
    return ds_combine(carry[0], carry[1], opinion[0], opinion[1]), None

  (b, u), _ = jax.lax.scan(step, (beliefs[0], uncertainties[0]),
                           (beliefs[1:], uncertainties[1:]))
  return b, u


def alpha_from_opinion(belief: jnp.ndarray, uncertainty: jnp.ndarray) -> jnp.ndarray:
  """Inverse of ``belief_and_uncertainty``: ``S = C / u``, ``alpha = b S + 1``."""
  num_classes = belief.shape[-1]
  strength = num_classes / jnp.maximum(uncertainty, _TINY)
  return belief * strength[..., None] + 1.0


def ds_combine_evidence(e1: jnp.ndarray, e2: jnp.ndarray) -> jnp.ndarray:
  """``ds_combine`` in evidence space: ``e = e1 + e2 + e1 * e2 / C``. ``[..., C]`` each.

  Substituting ``b = e / S``, ``u = C / S`` into TMC eq. 6-7 gives the combined strength
  ``S = S1 S2 (1 - K) / C`` and this evidence exactly. Unlike going through ``u = C / S``,
  its gradients stay finite however confident the opinions are; the result is clipped to
  ``MAX_EVIDENCE``.
  """
  chex.assert_equal_shape((e1, e2))
  num_classes = e1.shape[-1]
  return jnp.minimum(e1 + e2 + (e1 / num_classes) * e2, MAX_EVIDENCE)


def tmc_fusion(alphas: jnp.ndarray) -> jnp.ndarray:
  """TMC's fused Dirichlet from per-modality Dirichlets. ``[M, ..., C] -> [..., C]``.

  Folds ``ds_combine_evidence`` (the reduced Dempster-Shafer combination) over the
  modalities; equal to converting to opinions, ``ds_combine_many`` and back.
  """
  evidence = alphas - 1.0

  def step(carry, e):
    return ds_combine_evidence(carry, e), None

  fused, _ = jax.lax.scan(step, evidence[0], evidence[1:])
  return fused + 1.0


def uniform_weights(num_modalities: int) -> jnp.ndarray:
  """``[M]`` float32, every entry 1 / M: the modality weights before AMCB has measured
  anything, and wherever no weights are given."""
  return jnp.full((num_modalities,), 1.0 / num_modalities, jnp.float32)


def weighted_evidence_fusion(alphas: jnp.ndarray, weights: jnp.ndarray) -> jnp.ndarray:
  """RL-MBA's fusion ``alpha_f = 1 + sum_m w_m (alpha_m - 1)``.

  Args:
    alphas: ``[M, ..., C]`` per-modality Dirichlet parameters.
    weights: ``[M]`` modality weights (AMCB's, summing to 1, or any non-negative vector).

  Returns:
    ``[..., C]``.
  """
  chex.assert_rank(weights, 1)
  chex.assert_axis_dimension(alphas, 0, weights.shape[0])
  w = weights.reshape(weights.shape + (1,) * (alphas.ndim - 1))
  return 1.0 + jnp.sum(w * (alphas - 1.0), axis=0)
