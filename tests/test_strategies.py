"""The baseline strategies: known answers, parity with direct implementations, invariants."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlmba_jax import modality, selection
from rlmba_jax.data.specs import ModalitySpec
from rlmba_jax.models import MultimodalClassifier, make_fused_head

ALL = ("random", "entropy", "margin", "least_confidence", "bald", "coreset", "kmeans",
       "badge", "bmmal", "deepfool", "gcnal")


def test_registry_holds_every_baseline_with_its_needs():
  assert set(ALL) <= set(selection.available_strategies())
  assert selection.strategy_needs("bald") == {"mc_probs"}
  assert selection.strategy_needs("bmmal") == {"coalition_probs"}
  assert selection.strategy_needs("deepfool") == {"fused_head"}
  assert selection.strategy_needs("entropy") == frozenset()


def test_margin_and_least_confidence_known_answers():
  p = jnp.array([[0.5, 0.3, 0.2], [0.9, 0.05, 0.05], [0.4, 0.4, 0.2]])
  np.testing.assert_allclose(selection.margin_uncertainty(p), [0.8, 0.15, 1.0], atol=1e-6)
  np.testing.assert_allclose(selection.least_confidence(p), [0.5, 0.1, 0.6], atol=1e-6)


def test_bald_known_answers():
  agree = jnp.tile(jnp.array([[[0.7, 0.3]]]), (4, 1, 1))
  disagree = jnp.array([[[1.0, 0.0]], [[0.0, 1.0]]])
  np.testing.assert_allclose(selection.bald_mutual_information(agree), [0.0], atol=1e-6)
  np.testing.assert_allclose(selection.bald_mutual_information(disagree), [np.log(2)],
                             atol=1e-6)


# -- distances and k-center greedy ----------------------------------------------------------

def _direct_kcenter(x, labelled, budget):
  """The textbook O(N^2) k-center greedy on a full float64 distance matrix."""
  x = np.asarray(x, np.float64)
  d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
  centres = list(np.flatnonzero(labelled))
  picks = []
  for _ in range(budget):
    nearest = d[:, centres].min(1) if centres else np.full(len(x), np.inf)
    nearest[centres] = -np.inf
    j = int(np.argmax(nearest))
    picks.append(j)
    centres.append(j)
  return picks


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kcenter_greedy_equals_direct_implementation(seed):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(120, 6)).astype(np.float32)
  labelled = rng.random(120) < 0.2
  picks = jax.jit(selection.kcenter_greedy, static_argnums=2)(x, labelled, 25)
  assert np.asarray(picks).tolist() == _direct_kcenter(x, labelled, 25)


def test_min_distance_to_set_over_several_blocks():
  rng = np.random.default_rng(3)
  x = rng.normal(size=(50, 4)).astype(np.float32)
  members = rng.random(50) < 0.5
  got = selection.min_squared_distance_to_set(jnp.asarray(x), jnp.asarray(members), block=7)
  d = ((x[:, None] - x[None]) ** 2).sum(-1)[:, members].min(1)
  np.testing.assert_allclose(got, d, rtol=1e-4, atol=1e-4)
  empty = selection.min_squared_distance_to_set(jnp.asarray(x), jnp.zeros(50, bool), block=7)
  assert np.all(np.isinf(empty))


# -- k-means++ and the factorised gradient embeddings ---------------------------------------

def test_kmeanspp_draws_proportional_to_squared_distance():
  # Row 0 has the largest norm (first pick); the others sit at distances 1, 2, 3 from it.
  x = jnp.array([[10.0, 0.0], [9.0, 0.0], [8.0, 0.0], [7.0, 0.0]])
  sq = lambda j: jnp.sum((x - x[j]) ** 2, -1)
  draw = jax.jit(jax.vmap(lambda k: selection.kmeans_plusplus(
      k, jnp.sum(x * x, -1), sq, jnp.ones(4, bool), 2)))
  picks = np.asarray(draw(jax.random.split(jax.random.key(0), 7000)))
  assert np.all(picks[:, 0] == 0)
  freq = np.bincount(picks[:, 1], minlength=4)[1:] / len(picks)
  np.testing.assert_allclose(freq, np.array([1, 4, 9]) / 14, atol=0.02)


@pytest.mark.parametrize("seed", range(4))
def test_badge_factorised_equals_materialised(seed):
  rng = np.random.default_rng(seed)
  n, c, d = 80, 5, 7
  probs = jax.nn.softmax(jnp.asarray(rng.normal(size=(n, c)) * 2, jnp.float32))
  h = jnp.asarray(rng.normal(size=(n, d)), jnp.float32)
  available = jnp.asarray(rng.random(n) > 0.3)
  r = selection.pseudo_label_residual(probs)
  key = jax.random.key(seed)
  fast = selection.gradient_embedding_kmeanspp(key, r, [h], available, 20)
  emb = selection.materialised_gradient_embeddings(r, [h])
  assert emb.shape == (n, c * d)
  slow = selection.materialised_kmeanspp(key, emb, available, 20)
  assert np.asarray(fast).tolist() == np.asarray(slow).tolist()
  assert len(set(np.asarray(fast).tolist())) == 20
  assert np.all(np.asarray(available)[np.asarray(fast)])


@pytest.mark.parametrize("seed", range(3))
def test_bmmal_factorised_equals_materialised_with_three_scaled_blocks(seed):
  rng = np.random.default_rng(seed)
  n, c = 70, 4
  probs = jax.nn.softmax(jnp.asarray(rng.normal(size=(n, c)) * 2, jnp.float32))
  blocks = [jnp.asarray(rng.normal(size=(n, d)), jnp.float32) for d in (3, 5, 2)]
  scales = jnp.asarray(rng.uniform(0.2, 1.0, size=(n, 3)), jnp.float32)
  available = jnp.ones(n, bool).at[:10].set(False)
  r = selection.pseudo_label_residual(probs)
  key = jax.random.key(10 + seed)
  fast = selection.gradient_embedding_kmeanspp(key, r, blocks, available, 15, scales)
  emb = selection.materialised_gradient_embeddings(r, blocks, scales)
  slow = selection.materialised_kmeanspp(key, emb, available, 15)
  assert np.asarray(fast).tolist() == np.asarray(slow).tolist()


def test_bmmal_two_modality_scales_follow_the_official_rule():
  # Per-sample coalition values v(none), v({1}), v({2}), v({1,2}) of the predicted class.
  v = np.array([[0.1, 0.1], [0.6, 0.2], [0.3, 0.5], [0.9, 0.9]], np.float32)  # [S=4, N=2]
  probs = np.stack([v, 1 - v], -1)  # class 0 is predicted by the full coalition
  masks = modality.coalition_masks(2)
  order = [int(np.dot(m, [1, 2])) for m in masks]  # coalition index -> row of v
  coalition_probs = jnp.asarray(probs[order])
  c = selection.bmmal_contributions(coalition_probs, jnp.zeros(2, jnp.int32))
  # delta_1 = (v12 - v2 + v1 - v0) / 2, delta_2 = (v12 - v1 + v2 - v0) / 2 (official code).
  d1 = (v[3] - v[2] + v[1] - v[0]) / 2
  d2 = (v[3] - v[1] + v[2] - v[0]) / 2
  c1, c2 = np.abs(d1) / (np.abs(d1) + np.abs(d2)), np.abs(d2) / (np.abs(d1) + np.abs(d2))
  np.testing.assert_allclose(c, np.stack([c1, c2], -1), atol=1e-6)
  s = np.asarray(selection.bmmal_scales(c))
  expected = np.where(c1 > c2, [np.ones(2), 1 - (c1 - c2)], [1 - (c2 - c1), np.ones(2)]).T
  np.testing.assert_allclose(s, expected, atol=1e-6)


# -- DeepFool ---------------------------------------------------------------------------------

def test_deepfool_on_a_linear_head_is_the_distance_to_the_nearest_boundary():
  rng = np.random.default_rng(0)
  w = jnp.asarray(rng.normal(size=(6, 4)), jnp.float32)
  b = jnp.asarray(rng.normal(size=(4,)), jnp.float32)
  z = jnp.asarray(rng.normal(size=(30, 6)), jnp.float32)
  dist = selection.deepfool_perturbation(lambda h: h @ w + b, z, overshoot=0.0)
  logits = np.asarray(z @ w + b)
  y = logits.argmax(1)
  wn = np.asarray(w)
  exact = []
  for i in range(30):
    ratios = [abs(logits[i, k] - logits[i, y[i]]) / np.linalg.norm(wn[:, k] - wn[:, y[i]])
              for k in range(4) if k != y[i]]
    exact.append(min(ratios) ** 2)
  np.testing.assert_allclose(dist, exact, rtol=1e-3, atol=1e-3)


# -- GCNAL ------------------------------------------------------------------------------------

def test_factorised_graph_propagation_equals_dense_adjacency():
  rng = np.random.default_rng(0)
  x = jnp.asarray(np.abs(rng.normal(size=(40, 6))), jnp.float32)
  v = jnp.asarray(rng.normal(size=(40, 3)), jnp.float32)
  dense = selection.dense_cosine_adjacency(x)
  np.testing.assert_allclose(selection.cosine_graph_propagation(x)(v), dense @ v, rtol=1e-4,
                             atol=1e-4)


def test_gcn_learns_to_separate_labelled_nodes():
  rng = np.random.default_rng(1)
  x = jnp.asarray(np.abs(rng.normal(size=(200, 8))), jnp.float32)
  labelled = jnp.asarray(rng.random(200) < 0.3)
  scores, feats = jax.jit(selection.train_labelled_node_gcn)(jax.random.key(0), x, labelled)
  assert feats.shape == (200, 129)
  s = np.asarray(scores)
  assert s[np.asarray(labelled)].mean() > s[~np.asarray(labelled)].mean()


# -- every strategy on a real model's outputs -------------------------------------------------

@pytest.fixture(scope="module")
def model_view():
  """A pool view built from an initialised two-modality classifier (concat fusion)."""
  specs = (ModalitySpec("a", (5,), "vector"), ModalitySpec("b", (3,), "vector"))
  model = MultimodalClassifier(specs, num_classes=4, width=8, hidden=(16,), dropout=0.2)
  rng = np.random.default_rng(0)
  inputs = {"a": jnp.asarray(rng.normal(size=(90, 5)), jnp.float32),
            "b": jnp.asarray(rng.normal(size=(90, 3)), jnp.float32)}
  params = model.init(jax.random.key(0), inputs)["params"]
  out = model.apply({"params": params}, inputs)
  mc = jnp.stack([model.apply({"params": params}, inputs, train=True,
                              rngs={"dropout": jax.random.key(t)})["fused_probs"]
                  for t in range(10)])
  masks = jnp.asarray(modality.coalition_masks(2))
  coalitions = modality.coalition_probabilities(out, masks, modalities=("a", "b"),
                                                head="softmax", fusion="concat")
  labelled = jnp.zeros(90, bool).at[jnp.arange(0, 90, 4)].set(True)
  return selection.PoolView(out["fused_probs"], out["probs"], out["features"], labelled,
                            mc_probs=mc, coalition_probs=coalitions,
                            head_params={"params": params, "modality_weights": None},
                            fused_head=make_fused_head(model), modality_names=("a", "b"))


@pytest.mark.parametrize("name", ALL)
def test_every_strategy_returns_distinct_unlabelled_positions(name, model_view):
  options = {"gcnal": {"epochs": 20}}.get(name, {})
  fn = jax.jit(lambda k, v: selection.get_strategy(name)(k, v, 12, **options))
  picks = np.asarray(fn(jax.random.key(0), model_view))
  assert picks.shape == (12,) and picks.dtype == np.int32
  assert len(set(picks.tolist())) == 12
  assert not np.any(np.asarray(model_view.labelled)[picks])
  again = np.asarray(fn(jax.random.key(0), model_view))
  assert np.array_equal(picks, again)


def test_strategy_without_its_needs_says_what_is_missing(model_view):
  bare = selection.PoolView(model_view.probs, model_view.modality_probs, model_view.features,
                            model_view.labelled)
  with pytest.raises(ValueError, match="needs PoolView.mc_probs"):
    selection.get_strategy("bald")(jax.random.key(0), bare, 3)
  with pytest.raises(ValueError, match="needs PoolView.coalition_probs"):
    selection.get_strategy("bmmal")(jax.random.key(0), bare, 3)


def test_kmeans_takes_one_example_per_separated_cluster():
  rng = np.random.default_rng(0)
  centres = np.array([[0, 0], [20, 0], [0, 20], [20, 20], [10, 40]], np.float32)
  x = np.concatenate([c + rng.normal(scale=0.5, size=(30, 2)) for c in centres])
  picks = selection.kmeans_select(jax.random.key(3), jnp.asarray(x, jnp.float32),
                                  jnp.ones(len(x), bool), 5)
  assert sorted((np.asarray(picks) // 30).tolist()) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("fusion,head", [("concat", "softmax"), ("concat", "evidential"),
                                         ("tmc", "evidential"), ("evidence", "evidential")])
def test_fused_head_function_reproduces_the_models_fused_logits(fusion, head):
  specs = (ModalitySpec("a", (5,), "vector"), ModalitySpec("b", (3,), "vector"),
           ModalitySpec("c", (4,), "vector"))
  model = MultimodalClassifier(specs, num_classes=3, width=6, hidden=(8,), head=head,
                               fusion=fusion)
  rng = np.random.default_rng(0)
  inputs = {s.name: jnp.asarray(rng.normal(size=(10,) + s.shape), jnp.float32) for s in specs}
  weights = jnp.array([0.5, 0.3, 0.2])
  params = model.init(jax.random.key(1), inputs)["params"]
  out = model.apply({"params": params}, inputs, modality_weights=weights)
  h = jnp.concatenate([out["features"][m] for m in ("a", "b", "c")], -1)
  got = make_fused_head(model)({"params": params, "modality_weights": weights}, h)
  np.testing.assert_allclose(got, out["fused_logits"], rtol=1e-4, atol=1e-5)


def test_rlmba_projects_unequal_feature_widths():
  """BERT (768) + ResNet-101 (2048): fixed near-orthogonal projections to the larger width."""
  from rlmba_jax.selection import rlmba as rlmba_lib
  rng = np.random.default_rng(0)
  feats = {"text": jnp.asarray(rng.standard_normal((200, 96)), jnp.float32),
           "image": jnp.asarray(rng.standard_normal((200, 256)), jnp.float32)}
  probs = jnp.full((200, 4), 0.25)
  view = selection.PoolView(probs, {"text": probs, "image": probs}, feats,
                            jnp.zeros(200, bool), modality_names=("text", "image"))
  w = jnp.asarray([0.3, 0.7])
  fused = rlmba_lib.weighted_fused_features(view, w)
  assert fused.shape == (200, 256)
  np.testing.assert_array_equal(fused, rlmba_lib.weighted_fused_features(view, w))
  # squared distances keep each modality's share (no cross-modality terms on average)
  d = lambda x: np.sum((np.asarray(x)[:100] - np.asarray(x)[100:]) ** 2, axis=1)
  expected = 0.09 * d(feats["text"]) + 0.49 * d(feats["image"])
  assert abs(d(fused).mean() / expected.mean() - 1) < 0.1
