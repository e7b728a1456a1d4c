"""Known answers and properties of the evidential maths (rlmba_jax.fusion)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy.special import digamma, gammaln

from rlmba_jax import fusion

# Shapes are drawn from a small fixed set (values still vary freely): every distinct shape
# compiles the maths again, and a handful covers the edge cases (M = 1 or 2, C = 2).
MODALITIES_AND_CLASSES = st.sampled_from([(2, 2), (2, 5), (3, 3), (5, 4)])


def test_dirichlet_statistics_known_answers():
  alpha = jnp.array([2.0, 3.0, 5.0])
  s = 10.0
  want = np.array([2 * 8, 3 * 7, 5 * 5]) / (s ** 2 * (s + 1))
  np.testing.assert_allclose(fusion.dirichlet_variance(alpha), want, rtol=1e-6)
  np.testing.assert_allclose(fusion.mean_dirichlet_variance(alpha), want.mean(), rtol=1e-6)
  np.testing.assert_allclose(fusion.expected_probabilities(alpha), [0.2, 0.3, 0.5], rtol=1e-6)
  b, u = fusion.belief_and_uncertainty(fusion.alpha_from_evidence(jnp.array([1.0, 2.0, 0.0])))
  np.testing.assert_allclose(b, [1 / 6, 2 / 6, 0.0], rtol=1e-6)
  np.testing.assert_allclose(u, 0.5, rtol=1e-6)


def test_variance_matches_the_closed_form_of_a_sampled_dirichlet():
  alpha = np.array([1.5, 4.0, 0.7 + 1.0])
  samples = np.random.default_rng(0).dirichlet(alpha, size=400_000)
  np.testing.assert_allclose(fusion.dirichlet_variance(jnp.asarray(alpha)), samples.var(0),
                             rtol=2e-2)


@pytest.mark.parametrize("activation", ["softplus", "relu", "exp"])
def test_evidence_activations_are_non_negative_and_finite(activation):
  logits = jnp.array([-1e30, -5.0, 0.0, 3.0, 1e30])
  e = fusion.evidence_from_logits(logits, activation)
  assert np.all(np.isfinite(e)) and np.all(e >= 0) and e[-1] <= np.float32(fusion.MAX_EVIDENCE)
  with pytest.raises(ValueError, match="unknown evidence activation"):
    fusion.evidence_from_logits(logits, "tanh")


def test_two_view_tmc_combination_worked_by_hand():
  # View 1: e = [4, 0] -> alpha [5, 1], S 6, b [2/3, 0], u 1/3.
  # View 2: e = [1, 1] -> alpha [2, 2], S 4, b [1/4, 1/4], u 1/2.
  # Conflict K = b1_0 b2_1 + b1_1 b2_0 = 1/6; 1 - K = 5/6.
  # b_0 = (2/3 * 1/4 + 2/3 * 1/2 + 1/4 * 1/3) / (5/6) = 7/10; b_1 = (1/4 * 1/3) / (5/6) = 1/10
  # u = (1/3 * 1/2) / (5/6) = 1/5; S = C / u = 10; alpha = b S + 1 = [8, 2].
  a1, a2 = jnp.array([5.0, 1.0]), jnp.array([2.0, 2.0])
  b1, u1 = fusion.belief_and_uncertainty(a1)
  b2, u2 = fusion.belief_and_uncertainty(a2)
  np.testing.assert_allclose(fusion.conflict(b1, b2), 1 / 6, rtol=1e-6)
  b, u = fusion.ds_combine(b1, u1, b2, u2)
  np.testing.assert_allclose(b, [0.7, 0.1], rtol=1e-6)
  np.testing.assert_allclose(u, 0.2, rtol=1e-6)
  np.testing.assert_allclose(fusion.alpha_from_opinion(b, u), [8.0, 2.0], rtol=1e-5)
  np.testing.assert_allclose(fusion.tmc_fusion(jnp.stack([a1, a2])), [8.0, 2.0], rtol=1e-5)


def test_opposed_confident_views_share_belief():
  # e = [2, 0] and [0, 2]: b = [1/2, 0], [0, 1/2], u = 1/2 each; K = 1/4.
  # b = ([1/4, 0] + [0, 1/4]) / (3/4) = [1/3, 1/3]; u = (1/4) / (3/4) = 1/3.
  b, u = fusion.ds_combine(jnp.array([0.5, 0.0]), jnp.array(0.5), jnp.array([0.0, 0.5]),
                           jnp.array(0.5))
  np.testing.assert_allclose(b, [1 / 3, 1 / 3], rtol=1e-6)
  np.testing.assert_allclose(u, 1 / 3, rtol=1e-6)


def test_evidential_loss_known_answers():
  alpha = jnp.array([[2.0, 1.0]])
  # Target 0: psi(3) - psi(2) = 1/2; the non-target evidence is 0, so KL(Dir(1,1)||Dir(1,1)) = 0.
  np.testing.assert_allclose(fusion.evidential_loss(alpha, jnp.array([0]), 1.0), [0.5],
                             rtol=1e-5)
  # Target 1: psi(3) - psi(1) = 3/2; alpha~ = [2, 1]:
  # KL = lnG(3) - lnG(2) - lnG(1) - lnG(2) + (2 - 1)(psi(2) - psi(3)) = ln 2 - 1/2.
  for annealing in (0.0, 0.3, 1.0):
    np.testing.assert_allclose(fusion.evidential_loss(alpha, jnp.array([1]), annealing),
                               [1.5 + annealing * (np.log(2) - 0.5)], rtol=1e-5)
  np.testing.assert_allclose(fusion.annealing_coefficient(5, 10.0), 0.5)
  np.testing.assert_allclose(fusion.annealing_coefficient(50, 10.0), 1.0)


def test_kl_matches_scipy_formula():
  alpha = np.array([[1.3, 4.2, 2.0, 1.0]])
  s = alpha.sum()
  want = (gammaln(s) - gammaln(alpha).sum() - gammaln(4)
          + ((alpha - 1) * (digamma(alpha) - digamma(s))).sum())
  np.testing.assert_allclose(fusion.kl_to_uniform_dirichlet(jnp.asarray(alpha, jnp.float32)),
                             [want], rtol=1e-5)


evidence_values = st.one_of(st.just(0.0), st.floats(0.0, 1e3), st.floats(1e3, 1e30),
                            st.just(1e30))


def _evidence(draw_list, c):
  return jnp.asarray(np.array(draw_list, np.float32).reshape(-1, c))


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([2, 3, 6]).flatmap(lambda c: st.tuples(
    st.just(c), st.lists(evidence_values, min_size=c, max_size=c),
    st.lists(evidence_values, min_size=c, max_size=c))))
def test_opinions_sum_to_one_and_combination_commutes(args):
  c, e1, e2 = args
  a1 = fusion.alpha_from_evidence(_evidence(e1, c))
  a2 = fusion.alpha_from_evidence(_evidence(e2, c))
  for a in (a1, a2):
    b, u = fusion.belief_and_uncertainty(a)
    np.testing.assert_allclose(jnp.sum(b, -1) + u, 1.0, rtol=1e-5)
    assert np.all(np.isfinite(fusion.dirichlet_variance(a)))
  b1, u1 = fusion.belief_and_uncertainty(a1)
  b2, u2 = fusion.belief_and_uncertainty(a2)
  b12, u12 = fusion.ds_combine(b1, u1, b2, u2)
  b21, u21 = fusion.ds_combine(b2, u2, b1, u1)
  np.testing.assert_allclose(b12, b21, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(u12, u21, rtol=1e-5, atol=1e-30)
  np.testing.assert_allclose(jnp.sum(b12, -1) + u12, 1.0, rtol=1e-4)
  assert np.all(np.isfinite(b12)) and np.all(np.isfinite(u12))


@settings(max_examples=30, deadline=None)
@given(MODALITIES_AND_CLASSES, st.integers(0, 10_000))
def test_fold_over_modalities_is_order_free(shape, seed):
  m, c = shape
  e = jax.random.exponential(jax.random.key(seed), (m, c)) * 5
  alphas = fusion.alpha_from_evidence(e)
  a = fusion.tmc_fusion(alphas)
  b = fusion.tmc_fusion(alphas[::-1])
  perm = np.random.default_rng(seed).permutation(m)
  d = fusion.tmc_fusion(alphas[perm])
  np.testing.assert_allclose(a, b, rtol=1e-4)
  np.testing.assert_allclose(a, d, rtol=1e-4)
  # The reduced combination in evidence space: e = e1 + e2 + e1 * e2 / C (two views).
  if m == 2:
    np.testing.assert_allclose(a - 1, e[0] + e[1] + e[0] * e[1] / c, rtol=1e-4)


@settings(max_examples=30, deadline=None)
@given(st.sampled_from([(1, 3), (2, 2), (3, 3), (5, 4)]), st.integers(0, 10_000))
def test_weighted_evidence_fusion_with_a_basis_vector_returns_that_modality(shape, seed):
  m, c = shape
  alphas = 1.0 + jax.random.exponential(jax.random.key(seed), (m, 3, c)) * 10
  k = seed % m
  out = fusion.weighted_evidence_fusion(alphas, jnp.eye(m)[k])
  np.testing.assert_allclose(out, alphas[k], rtol=1e-6)
  w = jax.nn.softmax(jax.random.normal(jax.random.key(seed + 1), (m,)))
  want = 1 + sum(w[i] * (alphas[i] - 1) for i in range(m))
  np.testing.assert_allclose(fusion.weighted_evidence_fusion(alphas, w), want, rtol=1e-5)


@pytest.mark.parametrize("scale", [0.0, 1.0, 1e15, 1e30])
def test_gradients_are_finite_at_zero_and_huge_evidence(scale):
  logits = jnp.full((2, 3, 4), scale) * jnp.array([1.0, 0.0, 0.5, 0.0])

  def total(l):
    alphas = fusion.alpha_from_evidence(fusion.evidence_from_logits(l, "relu"))
    fused = fusion.tmc_fusion(alphas)
    weighted = fusion.weighted_evidence_fusion(alphas, jnp.array([0.3, 0.7]))
    labels = jnp.array([0, 1, 2])
    return (jnp.sum(fusion.evidential_loss(fused, labels, 1.0))
            + jnp.sum(fusion.evidential_loss(weighted, labels, 1.0))
            + jnp.sum(fusion.mean_dirichlet_variance(fused)))

  value, grad = jax.value_and_grad(total)(logits + 0.1)
  assert np.isfinite(value)
  assert np.all(np.isfinite(grad))


def test_jit_and_no_jit_agree():
  alphas = 1 + jax.random.exponential(jax.random.key(0), (3, 8, 5)) * 4
  labels = jnp.arange(8) % 5
  fns = [lambda a: fusion.tmc_fusion(a),
         lambda a: fusion.weighted_evidence_fusion(a, jnp.array([0.2, 0.3, 0.5])),
         lambda a: fusion.evidential_loss(a[0], labels, 0.5),
         lambda a: fusion.mean_dirichlet_variance(a)]
  for fn in fns:
    np.testing.assert_allclose(jax.jit(fn)(alphas), fn(alphas), rtol=1e-6)


@settings(max_examples=30, deadline=None)
@given(MODALITIES_AND_CLASSES, st.integers(0, 10_000))
def test_evidence_space_fold_equals_opinion_space_fold(shape, seed):
  m, c = shape
  alphas = 1 + jax.random.exponential(jax.random.key(seed), (m, 4, c)) * 3
  b, u = fusion.belief_and_uncertainty(alphas)
  via_opinions = fusion.alpha_from_opinion(*fusion.ds_combine_many(b, u))
  np.testing.assert_allclose(fusion.tmc_fusion(alphas), via_opinions, rtol=1e-4)
