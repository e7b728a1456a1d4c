r"""What a strategy picked, measured on the model it picked with (RL-MBA's diagnosis).

``selection_diagnostics`` takes the pool view a round's selection saw and the b positions a
strategy picked, and measures the picks against the unlabelled pool of that round:

* ``class_counts`` ``[C]``: how many picks fall in each class (their true labels);
* ``rank_*`` ``[3]``: the 10th, 50th and 90th percentile, over the picks, of each pick's
  percentile rank (0 = lowest, 1 = highest) within the unlabelled pool for: each modality's
  uncertainty ũ_m (``rank_uncertainty`` ``[M, 3]``), EFDA's fused difficulty U, RL-MBA's
  diversity distance d (``rank_diversity``: to the nearest of b k-means centroids on the
  weighted fused features, or to the nearest labelled example, as configured), the distance
  to the nearest labelled example (same features) and q. Random picks sit near 0.5;
  0.95 means "among the pool's top 5 %";
* ``far_from_labelled``: how many picks are farther from every labelled example than 90 % of
  the unlabelled pool is;
* ``overlap_margin`` / ``overlap_badge``: the fraction of the picks that margin / BADGE
  would pick from the same view (same model, same labelled set, same key);
* ``topk_overlap_uncertainty`` / ``topk_overlap_diversity``: of RL-MBA's top K = kappa b
  candidates by q, the fraction that the top K by the uncertainty term alone
  (sum_m w_m ũ_m) / the diversity term alone (beta d~) also holds: which term decides the
  candidate set;
* ``uncertainty_share``: mean over the picks of sum_m w_m ũ_m / q (1 = q is all uncertainty).

All of it is a pure function of the view (jit it with ``budget``, ``num_classes`` and the
RL-MBA options static); the loop records it per round under ``selection`` when
``config.al.diagnostics`` is set.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from rlmba_jax.selection.base import PoolView
from rlmba_jax.selection.diversity import min_squared_distance_to_set
from rlmba_jax.selection.gradient_embedding import badge_sampling
from rlmba_jax.selection.rlmba import candidate_terms, weighted_fused_features
from rlmba_jax.selection.uncertainty import margin_sampling

_QUANTILES = (0.1, 0.5, 0.9)


def percentile_rank(values: jnp.ndarray, reference: jnp.ndarray, at: jnp.ndarray
                    ) -> jnp.ndarray:
  """Fraction of the ``reference`` rows whose value is below ``values[at]`` (ties count
  half). ``values [N]``, ``reference [N]`` bool, ``at [b]`` int -> ``[b]`` in [0, 1]."""
  chex.assert_equal_shape((values, reference))
  ordered = jnp.sort(jnp.where(reference, values, jnp.inf))
  count = jnp.maximum(jnp.sum(reference), 1)
  x = values[at]
  below = jnp.searchsorted(ordered, x, side="left")
  not_above = jnp.minimum(jnp.searchsorted(ordered, x, side="right"), count)
  return (below + not_above) / (2.0 * count)


def _overlap(a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
  """Fraction of ``a``'s entries that also appear in ``b`` (both ``[b]`` positions)."""
  return jnp.mean(jnp.any(a[:, None] == b[None, :], axis=1))


def _top_mask(scores: jnp.ndarray, available: jnp.ndarray, k: int) -> jnp.ndarray:
  top = jax.lax.top_k(jnp.where(available, scores, -jnp.inf), k)[1]
  return jnp.zeros(scores.shape, bool).at[top].set(True)


def selection_diagnostics(key: jax.Array, pool: PoolView, picks: jnp.ndarray,
                          labels: jnp.ndarray, *, num_classes: int, kappa: int = 4,
                          beta: float = 0.5, efda: bool = True, lloyd_iterations: int = 5,
                          diversity: str = "centroid", difficulty_weight: float = 0.0
                          ) -> dict[str, jnp.ndarray]:
  """The diagnosis of one round's ``picks`` (``[b]`` positions) on ``pool`` (labelled =
  the set before the picks). ``labels`` ``[N]``: the pool's true labels. ``key``: the key
  the round's selection used, so the centroids are RL-MBA's own and BADGE's comparison
  draw is the one BADGE would have made. See the module docstring for the fields."""
  budget = picks.shape[0]
  chex.assert_rank(picks, 1)
  chex.assert_shape(labels, pool.labelled.shape)
  unlabelled = ~pool.labelled
  terms = candidate_terms(key, pool, budget, beta=beta, efda=efda,
                          lloyd_iterations=lloyd_iterations, diversity=diversity,
                          difficulty_weight=difficulty_weight)
  features = weighted_fused_features(pool, terms.weights)
  # RL-MBA's own distance already is this one under the labelled-distance diversity.
  to_labelled = (terms.distance if diversity == "labelled"
                 else jnp.sqrt(min_squared_distance_to_set(features, pool.labelled)))

  def ranks(values):
    return jnp.quantile(percentile_rank(values, unlabelled, picks), jnp.asarray(_QUANTILES))

  far_cut = jnp.nanquantile(jnp.where(unlabelled, to_labelled, jnp.nan), 0.9)
  uncertainty_part = terms.uncertainty @ terms.weights
  diversity_part = beta * terms.diversity
  k = min(kappa * budget, pool.labelled.shape[0])
  by_q = _top_mask(terms.q, unlabelled, k)

  def topk_overlap(scores):
    return jnp.sum(by_q & _top_mask(scores, unlabelled, k)) / k

  return {
      "class_counts": jnp.zeros(num_classes, jnp.int32).at[labels[picks]].add(1),
      "rank_uncertainty": jax.vmap(ranks, in_axes=1)(terms.uncertainty),
      "rank_difficulty": ranks(terms.difficulty),
      "rank_diversity": ranks(terms.distance),
      "rank_labelled_distance": ranks(to_labelled),
      "rank_q": ranks(terms.q),
      "far_from_labelled": jnp.sum(to_labelled[picks] > far_cut),
      "overlap_margin": _overlap(picks, margin_sampling(key, pool, budget)),
      "overlap_badge": _overlap(picks, badge_sampling(key, pool, budget)),
      "topk_overlap_uncertainty": topk_overlap(uncertainty_part),
      "topk_overlap_diversity": topk_overlap(diversity_part),
      "uncertainty_share": jnp.mean(uncertainty_part[picks]
                                    / jnp.maximum(terms.q[picks], 1e-12)),
  }
