"""Classification metrics over arrays: top-1, negative log-likelihood, calibration error."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp


def top1(probs: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
  """Fraction of rows whose arg-max equals the label. ``probs [N, C]``, ``labels [N]``."""
  chex.assert_rank(probs, 2)
  chex.assert_shape(labels, probs.shape[:1])
  return jnp.mean(jnp.argmax(probs, axis=-1) == labels)


def nll(probs: jnp.ndarray, labels: jnp.ndarray, eps: float = 1e-12) -> jnp.ndarray:
  """Mean negative log-probability of the true class."""
  chex.assert_rank(probs, 2)
  p = jnp.take_along_axis(probs, labels[:, None], axis=-1)[:, 0]
  return -jnp.mean(jnp.log(jnp.clip(p, eps, 1.0)))


def expected_calibration_error(probs: jnp.ndarray, labels: jnp.ndarray,
                               num_bins: int = 15) -> jnp.ndarray:
  """ECE with ``num_bins`` equal-width confidence bins on (0, 1] (Guo et al., 2017).

  ECE = sum_bins |bin| / N * |accuracy(bin) - mean confidence(bin)|; a prediction with
  confidence c falls in bin ceil(c * num_bins) - 1.
  """
  chex.assert_rank(probs, 2)
  confidence = jnp.max(probs, axis=-1)
  correct = (jnp.argmax(probs, axis=-1) == labels).astype(jnp.float32)
  bins = jnp.clip(jnp.ceil(confidence * num_bins).astype(jnp.int32) - 1, 0, num_bins - 1)
  count = jax.ops.segment_sum(jnp.ones_like(confidence), bins, num_bins)
  conf_sum = jax.ops.segment_sum(confidence, bins, num_bins)
  acc_sum = jax.ops.segment_sum(correct, bins, num_bins)
  return jnp.sum(jnp.abs(acc_sum - conf_sum)) / confidence.shape[0]


def classification_metrics(probs: jnp.ndarray, labels: jnp.ndarray) -> dict[str, jnp.ndarray]:
  return {"top1": top1(probs, labels), "nll": nll(probs, labels),
          "ece": expected_calibration_error(probs, labels)}
