"""Contributions (top-1 gap, exact Shapley), AMCB weights and the balance score."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rlmba_jax import fusion, modality


def _brute_force_shapley(value, m):
  """Average marginal contribution over all orderings (the definition)."""
  phi = np.zeros(m)
  for order in itertools.permutations(range(m)):
    coalition = 0
    for player in order:
      phi[player] += value[coalition | (1 << player)] - value[coalition]
      coalition |= 1 << player
  return phi / math.factorial(m)


def test_two_modalities_known_answer():
  v = jnp.array([0.0, 0.6, 0.2, 1.0])  # {}, {0}, {1}, {0, 1}
  # phi_0 = ((0.6 - 0) + (1.0 - 0.2)) / 2 = 0.7; phi_1 = ((0.2 - 0) + (1.0 - 0.6)) / 2 = 0.3
  np.testing.assert_allclose(modality.shapley_values(v), [0.7, 0.3], rtol=1e-6)


@settings(max_examples=25, deadline=None)
@given(st.sampled_from([1, 2, 3, 6]), st.integers(0, 10_000))  # few shapes: few compiles
def test_shapley_equals_definition_and_is_efficient(m, seed):
  v = np.random.default_rng(seed).normal(size=2 ** m)
  phi = np.asarray(modality.shapley_values(jnp.asarray(v)))
  if m <= 5:
    np.testing.assert_allclose(phi, _brute_force_shapley(v, m), atol=1e-5)
  np.testing.assert_allclose(phi.sum(), v[-1] - v[0], atol=1e-5)


def test_dummy_modality_gets_zero_and_batch_axes_pass_through():
  masks = modality.coalition_masks(3)
  values = jnp.asarray(masks[:, 0] * 1.0 + masks[:, 1] * 2.0)  # modality 2 adds nothing
  np.testing.assert_allclose(modality.shapley_values(values), [1.0, 2.0, 0.0], atol=1e-6)
  batched = jnp.stack([values, 2 * values], axis=-1)  # [2^M, 2]
  np.testing.assert_allclose(modality.shapley_values(batched)[:, 1], [2.0, 4.0, 0.0],
                             atol=1e-6)
  with pytest.raises(ValueError, match="1 to 8 modalities"):
    modality.coalition_masks(9)


def test_top1_gap():
  np.testing.assert_allclose(modality.top1_gap(jnp.array([0.9, 0.6]), jnp.array(0.95)),
                             [-0.05, -0.35], atol=1e-6)


def _outputs(seed, m=3, b=5, c=4):
  keys = jax.random.split(jax.random.key(seed), 4)
  names = [f"m{i}" for i in range(m)]
  alphas = 1 + jax.random.exponential(keys[0], (m, b, c)) * 3
  parts = jax.random.normal(keys[1], (m, b, c))
  bias = jnp.broadcast_to(jax.random.normal(keys[2], (c,)), (b, c))
  return names, {"alpha": dict(zip(names, alphas)), "fused_parts": dict(zip(names, parts)),
                 "fused_bias": bias}


@pytest.mark.parametrize("fusion_kind", ["concat", "tmc", "evidence"])
def test_full_and_single_coalitions_reproduce_the_fused_and_unimodal_predictions(fusion_kind):
  names, out = _outputs(0)
  masks = modality.coalition_masks(3)
  head = "softmax" if fusion_kind == "concat" else "evidential"
  w = jnp.array([0.2, 0.3, 0.5])
  probs = modality.coalition_probabilities(out, masks, modalities=names, head=head,
                                           fusion=fusion_kind, modality_weights=w)
  alphas = jnp.stack([out["alpha"][n] for n in names])
  if fusion_kind == "concat":
    full = jax.nn.softmax(out["fused_bias"] + sum(out["fused_parts"].values()))
    empty = jax.nn.softmax(out["fused_bias"])
  elif fusion_kind == "tmc":
    full = fusion.expected_probabilities(fusion.tmc_fusion(alphas))
    empty = jnp.full_like(full, 0.25)
    # Keeping only modality 1 gives modality 1's own opinion.
    np.testing.assert_allclose(probs[2], fusion.expected_probabilities(alphas[1]), rtol=1e-5)
  else:
    full = fusion.expected_probabilities(fusion.weighted_evidence_fusion(alphas, w))
    empty = jnp.full_like(full, 0.25)
  np.testing.assert_allclose(probs[-1], full, rtol=1e-5)
  np.testing.assert_allclose(probs[0], empty, rtol=1e-5)
  labels = jnp.array([0, 1, 2, 3, 0])
  values = modality.true_class_values(probs, labels)
  phi = modality.shapley_values(values)
  np.testing.assert_allclose(phi.sum(0), values[-1] - values[0], atol=1e-5)


def test_amcb_weights_init_update_floor_and_momentum():
  state = modality.amcb_init(3)
  np.testing.assert_allclose(state.weights, [1 / 3] * 3)
  delta = jnp.array([-0.01, -0.2, -0.05])
  state = modality.amcb_update(state, delta, temperature=0.1, floor=0.05)
  want = 0.05 + (1 - 0.15) * jax.nn.softmax(delta / 0.1)
  np.testing.assert_allclose(state.weights, want, rtol=1e-6)
  assert float(state.weights.sum()) == pytest.approx(1.0)
  assert np.all(state.weights >= 0.05) and int(np.argmax(state.weights)) == 0
  extreme = modality.amcb_update(modality.amcb_init(3), jnp.array([10.0, -10.0, -10.0]),
                                 temperature=0.01, floor=0.05)
  np.testing.assert_allclose(extreme.weights, [0.9, 0.05, 0.05], rtol=1e-5)
  smoothed = modality.amcb_update(state, jnp.array([0.0, 0.0, 0.0]), momentum=0.5)
  np.testing.assert_allclose(smoothed.contributions, delta * 0.5, rtol=1e-6)
  assert int(smoothed.count) == 2
  with pytest.raises(ValueError, match="must be below 1"):
    modality.amcb_weights(delta, 0.1, 0.5)
  jitted = jax.jit(lambda s, d: modality.amcb_update(s, d, temperature=0.1, floor=0.05))
  np.testing.assert_allclose(jitted(modality.amcb_init(3), delta).weights, want, rtol=1e-6)


def test_balance_score():
  assert float(modality.modality_balance(jnp.array([0.2, 0.2, 0.2, 0.2]))) == pytest.approx(1.0)
  assert float(modality.modality_balance(jnp.array([0.5, 0.0, 0.0, 0.0]))) == pytest.approx(0.0)
  # Two of four modalities carrying equal shares: (2 - 1) / (4 - 1).
  assert float(modality.modality_balance(jnp.array([0.3, 0.3, 0.0, -0.1]))) == pytest.approx(
      1 / 3, rel=1e-5)
  assert float(modality.modality_balance(jnp.array([-0.1, -0.2]))) == 0.0
  assert float(modality.modality_balance(jnp.array([0.4]))) == 1.0
  mid = float(modality.modality_balance(jnp.array([0.6, 0.3, 0.1])))
  assert 0.0 < mid < 1.0
