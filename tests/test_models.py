import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlmba_jax.data.specs import ModalitySpec
from rlmba_jax.models import MultimodalClassifier, PatchConv, fuse_with_weights, max_pool_2x2


@pytest.mark.parametrize("k", [1, 3, 5])
def test_patch_conv_equals_a_standard_same_convolution(k):
  x = jax.random.normal(jax.random.key(0), (2, 7, 6, 3))
  conv = nn.Conv(4, (k, k), padding="SAME")
  params = conv.init(jax.random.key(1), x)
  want = conv.apply(params, x)
  kernel = params["params"]["kernel"]  # [k, k, C_in, C_out]
  patch_params = {"params": {"Dense_0": {"kernel": kernel.reshape(k * k * 3, 4),
                                         "bias": params["params"]["bias"]}}}
  got = PatchConv(4, k).apply(patch_params, x)
  np.testing.assert_allclose(got, want, atol=1e-5)


def test_max_pool_pads_odd_sizes():
  x = jnp.arange(15.0).reshape(1, 3, 5, 1)
  got = max_pool_2x2(x)[0, :, :, 0]
  np.testing.assert_array_equal(got, [[6, 8, 9], [11, 13, 14]])


def _model():
  specs = (ModalitySpec("a", (5,)), ModalitySpec("img", (6, 5, 1), "image"))
  return MultimodalClassifier(specs, num_classes=3, width=8, hidden=(16,),
                              conv_channels=(4, 8), dropout=0.5)


def test_classifier_outputs_and_shapes():
  model = _model()
  inputs = {"a": jnp.ones((4, 5)), "img": jnp.ones((4, 6, 5, 1))}
  params = model.init(jax.random.key(0), inputs)
  out = model.apply(params, inputs)
  assert out["fused_logits"].shape == (4, 3)
  assert {k: v.shape for k, v in out["logits"].items()} == {"a": (4, 3), "img": (4, 3)}
  assert {k: v.shape for k, v in out["features"].items()} == {"a": (4, 8), "img": (4, 8)}
  # Dropout only in training mode.
  a = model.apply(params, inputs, train=True, rngs={"dropout": jax.random.key(1)})
  b = model.apply(params, inputs, train=True, rngs={"dropout": jax.random.key(2)})
  assert not np.allclose(a["fused_logits"], b["fused_logits"])


def test_missing_modality_is_named():
  model = _model()
  params = model.init(jax.random.key(0), {"a": jnp.ones((1, 5)), "img": jnp.ones((1, 6, 5, 1))})
  with pytest.raises(KeyError, match=r"no input for modality \['img'\]"):
    model.apply(params, {"a": jnp.ones((1, 5))})


def test_fuse_with_weights_gives_the_fused_outputs_of_other_weights():
  specs = (ModalitySpec("a", (5,)), ModalitySpec("b", (4,)))
  model = MultimodalClassifier(specs, num_classes=3, width=8, hidden=(16,),
                               head="evidential", fusion="evidence")
  inputs = {"a": jax.random.normal(jax.random.key(1), (6, 5)),
            "b": jax.random.normal(jax.random.key(2), (6, 4))}
  params = model.init(jax.random.key(0), inputs)
  before = model.apply(params, inputs, modality_weights=jnp.array([0.9, 0.1]))
  after = model.apply(params, inputs, modality_weights=jnp.array([0.3, 0.7]))
  refused = fuse_with_weights(before, ("a", "b"), jnp.array([0.3, 0.7]))
  for key in ("fused_alpha", "fused_logits", "fused_probs"):
    np.testing.assert_allclose(refused[key], after[key], rtol=1e-6)
  assert not np.allclose(before["fused_probs"], after["fused_probs"])
