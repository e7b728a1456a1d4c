r"""BADGE and BMMAL: k-means++ over last-layer gradient embeddings, never materialised.

BADGE (Ash et al., ICLR 2020) embeds an example by the gradient of the cross-entropy with its
own predicted label w.r.t. the fused head's weights, ``g = r (x) h`` with residual
``r = p - onehot(argmax p)`` ``[C]`` and fused features ``h`` ``[D]``. A Kronecker product has
``<g_i, g_j> = <r_i, r_j> <h_i, h_j>``, so every squared distance

    ||g_i - g_j||^2 = ||r_i||^2 ||h_i||^2 + ||r_j||^2 ||h_j||^2 - 2 <r_i, r_j> <h_i, h_j>

costs ``O(C + D)`` instead of ``O(C D)``, and k-means++ over N rows takes ``O(b N (C + D))``
time and ``O(N (C + D))`` memory: the ``[N, C D]`` matrix is never formed and the pool is never
split into chunks.

BMMAL (Shen et al., ACM MM 2023) scales each modality's block of the embedding by how much
that modality contributes to the example: with per-sample contributions ``c_m`` (normalised
absolute Shapley values of the fused probability of the predicted class), modality m's block
is multiplied by ``s_m = 1 - (max_k c_k - c_m)`` (the strongest modality keeps 1; for two
modalities this is the official code's rule). The embedding is ``[s_1 r (x) h_1, ...,
s_M r (x) h_M]``, so ``<g_i, g_j> = <r_i, r_j> sum_m s_im s_jm <h_im, h_jm>``: the same
factorisation, with M blocks.
"""

from __future__ import annotations

from typing import Sequence

import chex
import jax
import jax.numpy as jnp

from rlmba_jax import modality
from rlmba_jax.selection.base import PoolView, check_view, register
from rlmba_jax.selection.diversity import kmeans_plusplus, take_rows

_HIGHEST = jax.lax.Precision.HIGHEST


def pseudo_label_residual(probs: jnp.ndarray) -> jnp.ndarray:
  """``p - onehot(argmax p)``: the cross-entropy gradient w.r.t. the logits at the predicted
  label. ``[N, C] -> [N, C]``."""
  chex.assert_rank(probs, 2)
  return probs - jax.nn.one_hot(jnp.argmax(probs, -1), probs.shape[-1], dtype=probs.dtype)


def gradient_embedding_kmeanspp(key: jax.Array, residuals: jnp.ndarray,
                                blocks: Sequence[jnp.ndarray], available: jnp.ndarray,
                                budget: int, scales: jnp.ndarray | None = None) -> jnp.ndarray:
  """k-means++ (first pick: largest norm) over ``g_i = [s_i1 r_i (x) h_i1, ...]``, factorised.

  Args:
    key: PRNG key for the D^2 sampling.
    residuals: ``[N, C]`` rows ``r_i``.
    blocks: M arrays ``[N, D_m]`` (the feature blocks ``h_im``).
    available: ``[N]`` bool, the rows that may be picked (the unlabelled pool).
    budget: picks (static).
    scales: ``[N, M]`` per-row block scales ``s_im``; None means all ones (BADGE).

  Returns:
    ``[budget]`` int32 positions, the same as k-means++ on the materialised embeddings with
    the same key (``materialised_gradient_embeddings``).
  """
  chex.assert_rank(residuals, 2)
  n = residuals.shape[0]
  blocks = [jnp.asarray(b) for b in blocks]
  for b in blocks:
    chex.assert_shape(b, (n, None))
  if scales is None:
    scales = jnp.ones((n, len(blocks)), residuals.dtype)
  chex.assert_shape(scales, (n, len(blocks)))
  residual_sq = jnp.sum(residuals * residuals, -1)
  block_sq = jnp.stack([jnp.sum(b * b, -1) for b in blocks], -1)  # [N, M]
  squared_norms = residual_sq * jnp.sum(scales * scales * block_sq, -1)

  def squared_distance_to(j):
    rr = jnp.dot(residuals, take_rows(residuals, j), precision=_HIGHEST)
    hh = jnp.stack([jnp.dot(b, take_rows(b, j), precision=_HIGHEST)
                    for b in blocks], -1)  # [N, M]
    cross = rr * jnp.sum(scales * take_rows(scales, j) * hh, -1)
    return squared_norms + take_rows(squared_norms, j) - 2.0 * cross

  return kmeans_plusplus(key, squared_norms, squared_distance_to, available, budget,
                         first="max_norm")


def materialised_gradient_embeddings(residuals: jnp.ndarray, blocks: Sequence[jnp.ndarray],
                                     scales: jnp.ndarray | None = None) -> jnp.ndarray:
  """The explicit ``[N, C * sum_m D_m]`` embeddings (reference for tests and benchmarks)."""
  n = residuals.shape[0]
  if scales is None:
    scales = jnp.ones((n, len(blocks)), residuals.dtype)
  parts = [(scales[:, m, None, None] * residuals[:, :, None] * b[:, None, :]).reshape(n, -1)
           for m, b in enumerate(blocks)]
  return jnp.concatenate(parts, -1)


def materialised_kmeanspp(key: jax.Array, embeddings: jnp.ndarray, available: jnp.ndarray,
                          budget: int) -> jnp.ndarray:
  """k-means++ on explicit embeddings ``[N, E]``, the way the PyTorch BADGE code does it."""
  def squared_distance_to(j):
    diff = embeddings - embeddings[j]
    return jnp.sum(diff * diff, -1)

  return kmeans_plusplus(key, jnp.sum(embeddings * embeddings, -1), squared_distance_to,
                         available, budget, first="max_norm")


def bmmal_contributions(coalition_probs: jnp.ndarray, predicted: jnp.ndarray) -> jnp.ndarray:
  """Per-sample modality contributions ``c_m = |phi_m| / sum_k |phi_k|``. -> ``[N, M]``.

  ``phi`` are the exact Shapley values of the fused probability of the predicted class
  (``coalition_probs [2^M, N, C]``, ``predicted [N]``); rows with all ``phi = 0`` get 1/M.
  """
  values = jnp.take_along_axis(coalition_probs, predicted[None, :, None], axis=-1)[..., 0]
  phi = jnp.abs(modality.shapley_values(values)).T  # [N, M]
  total = jnp.sum(phi, -1, keepdims=True)
  return jnp.where(total > 0, phi / jnp.where(total > 0, total, 1.0), 1.0 / phi.shape[-1])


def bmmal_scales(contributions: jnp.ndarray) -> jnp.ndarray:
  """``s_m = 1 - (max_k c_k - c_m)``: the weaker modalities' blocks shrink. ``[N, M]``."""
  chex.assert_rank(contributions, 2)
  return 1.0 - (jnp.max(contributions, -1, keepdims=True) - contributions)


@register("badge", reads=("probs", "features"))
def badge_sampling(key: jax.Array, pool: PoolView, budget: int) -> jnp.ndarray:
  """BADGE on the fused head: gradient embeddings of the fused features, k-means++."""
  return gradient_embedding_kmeanspp(key, pseudo_label_residual(pool.probs),
                                     [pool.features[m] for m in pool.names], ~pool.labelled,
                                     budget)


@register("bmmal", needs=("coalition_probs",), reads=("probs", "features"))
def bmmal_sampling(key: jax.Array, pool: PoolView, budget: int) -> jnp.ndarray:
  """BMMAL: BADGE with each modality's block scaled by its per-sample contribution."""
  check_view(pool, ("coalition_probs",), "bmmal")
  scales = bmmal_scales(bmmal_contributions(pool.coalition_probs, jnp.argmax(pool.probs, -1)))
  return gradient_embedding_kmeanspp(key, pseudo_label_residual(pool.probs),
                                     [pool.features[m] for m in pool.names], ~pool.labelled,
                                     budget, scales)
