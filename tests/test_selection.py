import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlmba_jax import selection


def _view(probs, labelled):
  return selection.PoolView(jnp.asarray(probs), {}, {}, jnp.asarray(labelled))


def test_registry_names_and_errors():
  assert {"random", "entropy"} <= set(selection.available_strategies())
  with pytest.raises(ValueError, match="unknown strategy 'nope'; available: .*entropy"):
    selection.get_strategy("nope")


def test_entropy_picks_most_uncertain_unlabelled():
  probs = np.array([[0.5, 0.5], [0.9, 0.1], [0.6, 0.4], [0.55, 0.45], [1.0, 0.0]])
  labelled = np.array([True, False, False, False, False])
  picks = selection.get_strategy("entropy")(jax.random.key(0), _view(probs, labelled), 2)
  assert sorted(np.asarray(picks).tolist()) == [2, 3]


def test_predictive_entropy_known_answer_and_zero_probabilities():
  h = selection.predictive_entropy(jnp.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]]))
  np.testing.assert_allclose(h, [np.log(2), 0.0], atol=1e-7)
  g = jax.grad(lambda p: selection.predictive_entropy(p).sum())(jnp.array([[0.5, 0.5, 0.0]]))
  assert np.all(np.isfinite(g))


def test_random_is_seeded_distinct_and_unlabelled():
  labelled = np.zeros(100, bool)
  labelled[:50] = True
  fn = jax.jit(selection.get_strategy("random"), static_argnums=2)
  a = np.asarray(fn(jax.random.key(1), _view(np.ones((100, 2)) / 2, labelled), 30))
  b = np.asarray(fn(jax.random.key(1), _view(np.ones((100, 2)) / 2, labelled), 30))
  c = np.asarray(fn(jax.random.key(2), _view(np.ones((100, 2)) / 2, labelled), 30))
  assert np.array_equal(a, b) and not np.array_equal(a, c)
  assert len(set(a.tolist())) == 30 and np.all(a >= 50)


def test_random_is_uniform_over_the_unlabelled():
  labelled = np.zeros(10, bool)
  labelled[[0, 5]] = True
  fn = jax.jit(jax.vmap(lambda k: selection.get_strategy("random")(
      k, _view(np.ones((10, 2)) / 2, labelled), 2)))
  picks = np.asarray(fn(jax.random.split(jax.random.key(0), 4000))).ravel()
  counts = np.bincount(picks, minlength=10)
  assert counts[0] == counts[5] == 0
  # 8000 draws over 8 items: 1000 expected each, sd about 30.
  assert np.all(np.abs(counts[counts > 0] - 1000) < 150)
