import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlmba_jax.train import metrics


PROBS = jnp.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.45, 0.55]])
LABELS = jnp.array([0, 1, 1, 0])


def test_top1_and_nll_known_answers():
  assert float(metrics.top1(PROBS, LABELS)) == pytest.approx(0.5)
  want = -np.mean(np.log([0.9, 0.4, 0.7, 0.45]))
  assert float(metrics.nll(PROBS, LABELS)) == pytest.approx(want, rel=1e-6)


def test_ece_known_answer():
  # 15 bins of width 1/15. Confidences 0.9 (bin 13, correct), 0.6 (bin 8, wrong),
  # 0.7 (bin 10, correct), 0.55 (bin 8, wrong). Bin 8: |0 - 1.15| ; bin 10: |1 - 0.7|;
  # bin 13: |1 - 0.9|. ECE = (1.15 + 0.3 + 0.1) / 4.
  assert float(metrics.expected_calibration_error(PROBS, LABELS)) == pytest.approx(
      1.55 / 4, rel=1e-6)


def test_ece_is_zero_for_perfect_confident_predictions():
  probs = jax.nn.one_hot(jnp.array([0, 2, 1]), 3)
  assert float(metrics.expected_calibration_error(probs, jnp.array([0, 2, 1]))) == 0.0


def test_macro_f1_and_per_class_accuracy_known_answers():
  # Predictions 0, 1, 1, 0 for labels 0, 1, 1, 0 -> perfect; then flip one.
  labels = jnp.array([0, 0, 1, 1, 2])
  preds = jnp.array([0, 1, 1, 1, 0])
  probs = jax.nn.one_hot(preds, 3)
  # Class 0: TP 1, FP 1, FN 1 -> F1 = 2/4; class 1: TP 2, FP 1, FN 0 -> 4/5;
  # class 2: TP 0, FN 1 -> 0. Macro = (0.5 + 0.8 + 0) / 3.
  assert float(metrics.macro_f1(probs, labels)) == pytest.approx((0.5 + 0.8) / 3, rel=1e-6)
  np.testing.assert_allclose(metrics.per_class_accuracy(probs, labels), [0.5, 1.0, 0.0])
  cm = metrics.confusion_matrix(preds, labels, 3)
  np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 2, 0], [1, 0, 0]])


def test_macro_f1_skips_classes_never_seen_nor_predicted():
  probs = jax.nn.one_hot(jnp.array([0, 1]), 4)
  assert float(metrics.macro_f1(probs, jnp.array([0, 1]))) == pytest.approx(1.0)
  acc = np.asarray(metrics.per_class_accuracy(probs, jnp.array([0, 1])))
  assert acc[0] == 1.0 and np.isnan(acc[2])
