r"""RL-MBA's candidate scoring (docs/experiments.md, "RL-MBA", step 1) and its policy-free selection.

For every unlabelled example

    q(x) = sum_m w_m u~_m(x) + beta d~(x)

with ``w`` the AMCB modality weights, ``u~_m`` modality m's evidential uncertainty (the class
mean of its Dirichlet variance; the softmax entropy when EFDA is off) and ``d~`` the distance
to the nearest of b k-means++ centroids, refined by at most ``lloyd_iterations`` Lloyd steps,
on the weighted fused features ``f(x) = sum_m w_m P_m f_m(x)``. Every term is min–max
normalised over the unlabelled pool of the round. ``diversity="labelled"`` replaces the
distance to the nearest centroid (high for atypical examples) by the distance to the nearest
*labelled* example (high in regions no label covers yet; CoreSet's criterion), an option the
search on validation may choose. The candidate set is the top ``K = kappa b`` by q; the
policy (``rlmba_jax.policy``) then draws b of them. ``P_m`` is the identity when
every modality has the same feature width (the MLP/CNN encoders, R(2+1)D-18 + ResNet-18);
otherwise (BERT 768 + ResNet-101 2048) it is a fixed Gaussian projection to the largest width
D, entries N(0, 1/D), seeded by the modality's position: independent projections are nearly
orthogonal, so distances keep each modality's geometry without cross-modality terms.
"""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

from rlmba_jax import fusion as fusion_lib
from rlmba_jax.config_choices import DIVERSITIES
from rlmba_jax.selection.base import PoolView, register
from rlmba_jax.selection.diversity import (kmeans_centroids, min_squared_distance_to_set,
                                           squared_distances)
from rlmba_jax.selection.uncertainty import predictive_entropy


class RoundCandidates(NamedTuple):
  """The K candidates of a round and what the policy sees of them.

  Attributes:
    positions: ``[K]`` int32 pool positions, best q first.
    valid: ``[K]`` bool; false where the pool had fewer than K unlabelled examples.
    features: ``[K, 3 + 2M]`` per candidate: q, u~_1..u~_M, d~, U (fused difficulty), w_1..w_M.
    summary: ``[4]`` mean and std of the modality-averaged u~ and of d~ over the unlabelled
      pool (part of the policy's round state).
  """
  positions: jnp.ndarray
  valid: jnp.ndarray
  features: jnp.ndarray
  summary: jnp.ndarray


def minmax_normalise(x: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
  """``(x - min) / (max - min)`` over the rows where ``mask``; 0 where constant. ``[N]``."""
  chex.assert_equal_shape((x, mask))
  lo = jnp.min(jnp.where(mask, x, jnp.inf))
  hi = jnp.max(jnp.where(mask, x, -jnp.inf))
  span = hi - lo
  return jnp.where(mask & (span > 0), (x - lo) / jnp.where(span > 0, span, 1.0), 0.0)


def modality_uncertainties(pool: PoolView, efda: bool = True) -> jnp.ndarray:
  """``[N, M]``: mean Dirichlet variance of each head (EFDA), or its normalised entropy."""
  if efda:
    if pool.modality_alphas is None:
      raise ValueError("RL-MBA with EFDA needs evidential heads (PoolView.modality_alphas); "
                       "set config.model.head='evidential' or config.al.rlmba.efda=False")
    return jnp.stack([fusion_lib.mean_dirichlet_variance(pool.modality_alphas[m])
                      for m in pool.names], -1)
  num_classes = pool.probs.shape[-1]
  return jnp.stack([predictive_entropy(pool.modality_probs[m]) / jnp.log(num_classes)
                    for m in pool.names], -1)


def efda_difficulty(modality_alphas, names, weights: jnp.ndarray) -> jnp.ndarray:
  """EFDA's difficulty ``U(x)`` (EFDA: Evidential Fusion for Difficulty-Aware policy
  adjustment, the paper's name for this term and its use in the policy): the class-mean Dirichlet variance of the weighted evidence
  fusion ``alpha_f = 1 + sum_m w_m (alpha_m - 1)`` of the modality heads. ``[N]``.

  It serves the selector only: the classifier's own prediction (the multimodal head, or a
  Dirichlet fusion) is never read here, so under the paper's protocol (a softmax
  multimodal head) RL-MBA's difficulty still comes from the modality opinions.
  ``modality_alphas``: modality -> ``[N, C]``; ``weights``: ``[M]`` in ``names`` order.
  """
  chex.assert_shape(weights, (len(names),))
  alphas = jnp.stack([modality_alphas[m] for m in names])
  return fusion_lib.mean_dirichlet_variance(fusion_lib.weighted_evidence_fusion(alphas, weights))


_PROJECTION_SEED = 20260325


def weighted_fused_features(pool: PoolView, weights: jnp.ndarray) -> jnp.ndarray:
  """``sum_m w_m P_m f_m(x)`` -> ``[N, D]`` (``P_m``: see the module docstring)."""
  widths = [pool.features[m].shape[-1] for m in pool.names]
  if len(set(widths)) == 1:
    return sum(w * pool.features[m] for w, m in zip(weights, pool.names))
  width = max(widths)
  key = jax.random.key(_PROJECTION_SEED)
  total = 0.0
  for i, (w, m) in enumerate(zip(weights, pool.names)):
    f = pool.features[m]
    projection = jax.random.normal(jax.random.fold_in(key, i), (f.shape[-1], width),
                                   f.dtype) / jnp.sqrt(width).astype(f.dtype)
    total = total + w * (f @ projection)
  return total


def centroid_distance(key: jax.Array, features: jnp.ndarray, available: jnp.ndarray,
                      num_centroids: int, lloyd_iterations: int = 5) -> jnp.ndarray:
  """Distance of every row to the nearest of ``num_centroids`` k-means centroids fitted on
  the ``available`` rows (k-means++ start, ``lloyd_iterations`` Lloyd steps). ``[N]``."""
  centroids = kmeans_centroids(key, features, available, num_centroids, lloyd_iterations)
  return jnp.sqrt(jnp.min(squared_distances(features, centroids), axis=1))


class CandidateTerms(NamedTuple):
  """The pieces of q over the whole pool (N rows; normalised over the unlabelled ones).

  Attributes:
    uncertainty: ``[N, M]`` u~_m, each modality's min–max normalised uncertainty.
    distance: ``[N]`` raw diversity distance: to the nearest of the b centroids, or to the
      nearest labelled example (``diversity="labelled"``).
    diversity: ``[N]`` d~, ``distance`` min–max normalised.
    difficulty: ``[N]`` EFDA's U(x) (or the fused entropy without EFDA), normalised.
    q: ``[N]`` ``uncertainty @ weights + beta * diversity``.
    weights: ``[M]`` the modality weights used.
  """
  uncertainty: jnp.ndarray
  distance: jnp.ndarray
  diversity: jnp.ndarray
  difficulty: jnp.ndarray
  q: jnp.ndarray
  weights: jnp.ndarray


def candidate_terms(key: jax.Array, pool: PoolView, budget: int, *, beta: float = 0.5,
                    efda: bool = True, lloyd_iterations: int = 5,
                    diversity: str = "centroid", difficulty_weight: float = 0.0
                    ) -> CandidateTerms:
  """q(x) and its terms for every pool row (``budget`` centroids for the distance).

  ``difficulty_weight`` gamma > 0 adds gamma U~(x) to q: EFDA's difficulty then reaches the
  candidate set itself (a variant; the paper feeds U to the policy only, whose learnt part
  starts at zero)."""
  if diversity not in DIVERSITIES:
    raise ValueError(f"al.rlmba.diversity={diversity!r}; choose from {DIVERSITIES}")
  names = pool.names
  weights = (fusion_lib.uniform_weights(len(names)) if pool.modality_weights is None
             else pool.modality_weights)
  chex.assert_shape(weights, (len(names),))
  unlabelled = ~pool.labelled
  u = modality_uncertainties(pool, efda)  # [N, M]
  u_norm = jax.vmap(lambda col: minmax_normalise(col, unlabelled), in_axes=1, out_axes=1)(u)
  fused = weighted_fused_features(pool, weights)
  if diversity == "labelled":
    d = jnp.sqrt(min_squared_distance_to_set(fused, pool.labelled))
  else:
    d = centroid_distance(key, fused, unlabelled, budget, lloyd_iterations)
  d_norm = minmax_normalise(d, unlabelled)
  q = u_norm @ weights + beta * d_norm
  if efda:
    difficulty = efda_difficulty(pool.modality_alphas, names, weights)
  else:
    difficulty = predictive_entropy(pool.probs) / jnp.log(pool.probs.shape[-1])
  difficulty = minmax_normalise(difficulty, unlabelled)
  if difficulty_weight:
    q = q + difficulty_weight * difficulty
  return CandidateTerms(u_norm, d, d_norm, difficulty, q, weights)


def score_candidates(key: jax.Array, pool: PoolView, budget: int, *, kappa: int = 4,
                     beta: float = 0.5, efda: bool = True, lloyd_iterations: int = 5,
                     diversity: str = "centroid", difficulty_weight: float = 0.0
                     ) -> RoundCandidates:
  """The round's candidate set: the top ``kappa * budget`` unlabelled examples by q."""
  terms = candidate_terms(key, pool, budget, beta=beta, efda=efda,
                          lloyd_iterations=lloyd_iterations, diversity=diversity,
                          difficulty_weight=difficulty_weight)
  unlabelled = ~pool.labelled
  k = min(kappa * budget, pool.labelled.shape[0])
  scores, positions = jax.lax.top_k(jnp.where(unlabelled, terms.q, -jnp.inf), k)
  valid = jnp.isfinite(scores)
  features = jnp.concatenate([
      terms.q[positions, None], terms.uncertainty[positions], terms.diversity[positions, None],
      terms.difficulty[positions, None],
      jnp.broadcast_to(terms.weights, (k, len(pool.names)))], -1)
  count = jnp.maximum(jnp.sum(unlabelled), 1)
  mean_u = jnp.mean(terms.uncertainty, -1)

  def moments(x):
    mean = jnp.sum(jnp.where(unlabelled, x, 0.0)) / count
    var = jnp.sum(jnp.where(unlabelled, (x - mean) ** 2, 0.0)) / count
    return mean, jnp.sqrt(var)

  summary = jnp.stack([*moments(mean_u), *moments(terms.diversity)])
  return RoundCandidates(positions.astype(jnp.int32), valid,
                         jnp.where(valid[:, None], features, 0.0), summary)


@register("rlmba", needs=("evidential", "modality_weights"),
          reads=("probs", "modality_probs", "features"))
def rlmba_heuristic(key: jax.Array, pool: PoolView, budget: int, *, kappa: int = 4,
                    beta: float = 0.5, efda: bool = True, lloyd_iterations: int = 5,
                    diversity: str = "centroid", difficulty_weight: float = 0.0,
                    **unused_policy_options) -> jnp.ndarray:
  """RL-MBA without the policy: the top ``budget`` candidates by q.

  The experiment loop runs the full method (policy draws, REINFORCE) when
  ``config.al.rlmba.policy`` is true; this function is the ``policy=False`` ablation and
  what a user calls to score a pool with RL-MBA's heuristic alone.
  """
  del unused_policy_options
  candidates = score_candidates(key, pool, budget, kappa=kappa, beta=beta, efda=efda,
                                lloyd_iterations=lloyd_iterations, diversity=diversity,
                                difficulty_weight=difficulty_weight)
  return candidates.positions[:budget]
