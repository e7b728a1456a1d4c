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
  conf_sum = jax.ops.segment_sum(confidence, bins, num_bins)
  acc_sum = jax.ops.segment_sum(correct, bins, num_bins)
  return jnp.sum(jnp.abs(acc_sum - conf_sum)) / confidence.shape[0]


def confusion_matrix(predictions: jnp.ndarray, labels: jnp.ndarray, num_classes: int
                     ) -> jnp.ndarray:
  """``[C, C]`` counts, rows = true class, columns = predicted class."""
  index = labels * num_classes + predictions
  return jnp.bincount(index, length=num_classes * num_classes).reshape(num_classes,
                                                                      num_classes)


def _confusion(probs: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
  return confusion_matrix(jnp.argmax(probs, -1), labels, probs.shape[-1]).astype(jnp.float32)


def macro_f1_from_confusion(cm: jnp.ndarray) -> jnp.ndarray:
  """Unweighted mean over classes of F1 = 2TP / (2TP + FP + FN) from a ``[C, C]`` matrix.

  Classes that neither occur nor are predicted are left out of the mean (their F1 is
  undefined); a class that occurs but is never predicted correctly scores 0.
  """
  tp = jnp.diag(cm)
  denominator = cm.sum(0) + cm.sum(1)  # = 2TP + FP + FN
  present = denominator > 0
  f1 = jnp.where(present, 2 * tp / jnp.where(present, denominator, 1.0), 0.0)
  return jnp.sum(f1) / jnp.maximum(jnp.sum(present), 1)


def recall_from_confusion(cm: jnp.ndarray) -> jnp.ndarray:
  """``[C]`` recall of each class from a ``[C, C]`` matrix (NaN for an absent class)."""
  support = cm.sum(1)
  return jnp.where(support > 0, jnp.diag(cm) / jnp.where(support > 0, support, 1.0), jnp.nan)


def macro_f1(probs: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
  """Macro-F1 of the arg-max predictions of ``probs [N, C]``."""
  return macro_f1_from_confusion(_confusion(probs, labels))


def per_class_accuracy(probs: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
  """``[C]`` recall of each class (NaN for a class absent from ``labels``)."""
  return recall_from_confusion(_confusion(probs, labels))


def classification_metrics(probs: jnp.ndarray, labels: jnp.ndarray) -> dict[str, jnp.ndarray]:
  """top-1, NLL, ECE (15 bins), macro-F1 and per-class accuracy of ``probs [N, C]``."""
  cm = _confusion(probs, labels)
  return {"top1": top1(probs, labels), "nll": nll(probs, labels),
          "ece": expected_calibration_error(probs, labels),
          "macro_f1": macro_f1_from_confusion(cm),
          "per_class_top1": recall_from_confusion(cm)}
