r"""What the selection policy reads: per-modality columns, or summaries that do not depend on M or C.

The paper's policy reads, per candidate, ``q, u~_1..u~_M, d~, U, w_1..w_M`` and, per round,
``[val top-1, NLL, ECE, Delta_1..Delta_M, loss slope, grad norm, labelled fraction]`` plus
the pool's uncertainty and diversity summaries (``"per_modality"``, ``3 + 2M`` and
``10 + M`` numbers). A network over those columns is tied to one M and one modality order,
so a policy trained on mfeat (M = 6) cannot read av_digits (M = 2).

``"invariant"`` keeps the same content as summaries over modalities:

* candidate ``[7]``: q, the weighted uncertainty ``sum_m w_m u~_m``, ``max_m u~_m``,
  ``min_m u~_m``, the spread ``std_m u~_m``, d~, U;
* round ``[16]``: val top-1, ``NLL / log C`` (1 = a uniform guess, whatever C), ECE, the
  weighted gap ``sum_m w_m Delta_m``, ``max_m Delta_m``, ``min_m Delta_m``, ``std_m Delta_m``,
  the largest weight, the weights' normalised entropy (1 = uniform), the relative loss change
  over the last quarter of training, ``log(1 + grad norm)``, the labelled fraction, and the
  four pool summaries.

Every summary is symmetric in the modalities, so the scores do not change when the
modalities are listed in another order, and no input has a width that depends on M or C.
"""

from __future__ import annotations

import chex
import jax.numpy as jnp
import numpy as np

from rlmba_jax.config_choices import POLICY_INPUTS


INVARIANT_FEATURE_DIM = 7
INVARIANT_STATE_DIM = 16
SUMMARY_DIM = 4  # RoundCandidates.summary


def input_dims(kind: str, num_modalities: int) -> tuple[int, int]:
  """``(candidate feature width F, round state width S)`` of the policy's inputs."""
  if kind == "per_modality":
    return 3 + 2 * num_modalities, 6 + num_modalities + SUMMARY_DIM
  if kind == "invariant":
    return INVARIANT_FEATURE_DIM, INVARIANT_STATE_DIM
  raise ValueError(f"al.rlmba.policy_inputs={kind!r}; choose from {POLICY_INPUTS}")


def _spread(x: jnp.ndarray, axis: int = -1) -> jnp.ndarray:
  return jnp.sqrt(jnp.maximum(jnp.var(x, axis=axis), 0.0))


def invariant_candidate_features(features: jnp.ndarray, num_modalities: int) -> jnp.ndarray:
  """``[K, 3 + 2M]`` (``RoundCandidates.features``) -> ``[K, 7]`` modality summaries.

  Column 0 stays q, so the policy's prior ``q / T`` reads the same number in both layouts.
  """
  m = num_modalities
  chex.assert_shape(features, (None, 3 + 2 * m))
  q, u = features[:, 0], features[:, 1:1 + m]
  distance, difficulty, w = features[:, 1 + m], features[:, 2 + m], features[:, 3 + m:]
  return jnp.stack([q, jnp.sum(w * u, -1), jnp.max(u, -1), jnp.min(u, -1), _spread(u),
                    distance, difficulty], -1)


def relative_loss_change(curve: jnp.ndarray) -> jnp.ndarray:
  """``(l_end - l_{end-k}) / l_{end-k}`` over the last quarter ``k`` of a loss curve ``[T]``
  (0 for a curve of one point): the same number whether the curve is in epochs or steps."""
  chex.assert_rank(curve, 1)
  n = curve.shape[0]
  k = max(1, n // 4)
  if n <= k:
    return jnp.zeros((), jnp.float32)
  before = curve[-1 - k]
  return (curve[-1] - before) / jnp.maximum(jnp.abs(before), 1e-6)


def invariant_round_state(val_top1, val_nll, val_ece, gaps, weights, loss_change,
                          grad_norm, labelled_fraction, summary, num_classes: int
                          ) -> jnp.ndarray:
  """The round state as modality summaries -> ``[16]`` (module docstring).

  ``gaps``, ``weights``: ``[M]`` Delta_m and the modality weights in one order;
  ``summary``: ``[4]`` ``RoundCandidates.summary``; the rest scalars.
  """
  gaps = jnp.asarray(gaps, jnp.float32)
  weights = jnp.asarray(weights, jnp.float32)
  chex.assert_rank([gaps, weights], 1)
  chex.assert_equal_shape([gaps, weights])
  chex.assert_shape(summary, (SUMMARY_DIM,))
  m = gaps.shape[0]
  entropy = -jnp.sum(jnp.where(weights > 0, weights * jnp.log(jnp.maximum(weights, 1e-30)),
                               0.0))
  normalised_entropy = entropy / np.log(m) if m > 1 else jnp.ones(())
  scalars = [jnp.asarray(x, jnp.float32) for x in (
      val_top1, jnp.asarray(val_nll) / np.log(num_classes), val_ece, jnp.sum(weights * gaps),
      jnp.max(gaps), jnp.min(gaps), _spread(gaps), jnp.max(weights), normalised_entropy,
      loss_change, jnp.log1p(jnp.asarray(grad_norm)), labelled_fraction)]
  return jnp.concatenate([jnp.stack(scalars), jnp.asarray(summary, jnp.float32)])
