import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from rlmba_jax import parallel
from rlmba_jax.data.specs import ModalitySpec
from rlmba_jax.models import MultimodalClassifier
from rlmba_jax.train import Trainer, multimodal_cross_entropy


class _TracedOnce(Trainer):
  """A trainer whose train and predict programs may be traced once each: chex raises on a
  second trace (a recompilation)."""
  _train = chex.assert_max_traces(Trainer._train, n=1)  # pylint: disable=protected-access
  _predict = chex.assert_max_traces(Trainer._predict, n=1)  # pylint: disable=protected-access


class _ChunksTracedOnce(Trainer):
  """Training in chunks of epochs (progress bars) may be traced once: the first chunk and
  the later ones share one program."""
  _train_chunk = chex.assert_max_traces(  # pylint: disable=protected-access
      Trainer._train_chunk, n=1)


def _problem(n=96, seed=0, trainer_class=Trainer):
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 3, n).astype(np.int32)
  centres = rng.normal(size=(3, 6)) * 3
  inputs = {"x": (centres[labels] + rng.normal(size=(n, 6))).astype(np.float32),
            "y": (centres[labels][:, :4] + rng.normal(size=(n, 4))).astype(np.float32)}
  model = MultimodalClassifier((ModalitySpec("x", (6,)), ModalitySpec("y", (4,))),
                               num_classes=3, width=8, hidden=(16,))
  trainer = trainer_class(model, optax.adam(1e-2), batch_size=16, num_epochs=6,
                          eval_batch_size=32, mesh=parallel.make_mesh(1))
  return inputs, labels, trainer


def test_loss_is_mean_of_fused_and_unimodal_cross_entropies():
  logits = jnp.array([[2.0, 0.0], [0.0, 1.0]])
  out = {"fused_logits": logits, "logits": {"a": logits * 0, "b": -logits}}
  labels = jnp.array([0, 1])
  ce = lambda l: optax.softmax_cross_entropy_with_integer_labels(l, labels)
  want = (ce(logits) + ce(logits * 0) + ce(-logits)) / 3
  got = multimodal_cross_entropy(out, labels, jnp.array([1.0, 1.0]))
  np.testing.assert_allclose(got, want.mean(), rtol=1e-6)
  got0 = multimodal_cross_entropy(out, labels, jnp.array([1.0, 0.0]))
  np.testing.assert_allclose(got0, want[0], rtol=1e-6)


def test_training_reduces_loss_and_compiles_once_for_any_labelled_set():
  inputs, labels, trainer = _problem(trainer_class=_TracedOnce)
  example = jax.tree.map(lambda v: v[:1], inputs)
  for count in (5, 40, 96):  # one compiled program for every labelled set
    mask = np.zeros(len(labels), bool)
    mask[:count] = True
    state = trainer.init(jax.random.key(0), example)
    state, log = trainer.train(state, jax.random.key(1), inputs, labels, mask)
    assert int(log.num_steps) == 6 * max(1, -(-count // 16))
    assert float(log.epoch_loss[-1]) < float(log.epoch_loss[0])
  out = trainer.predict(state.params, inputs)
  assert out["fused_logits"].shape == (96, 3)
  trainer.predict(state.params, inputs)


def test_unlabelled_examples_never_influence_training():
  inputs, labels, trainer = _problem()
  example = jax.tree.map(lambda v: v[:1], inputs)
  mask = np.zeros(len(labels), bool)
  mask[::3] = True
  scrambled = labels.copy()
  scrambled[~mask] = (scrambled[~mask] + 1) % 3
  noisy = {k: v.copy() for k, v in inputs.items()}
  noisy["x"][~mask] = 1e3
  a, _ = trainer.train(trainer.init(jax.random.key(0), example), jax.random.key(1),
                       inputs, labels, mask)
  b, _ = trainer.train(trainer.init(jax.random.key(0), example), jax.random.key(1),
                       noisy, scrambled, mask)
  for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
    np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-6)


def test_mc_dropout_passes_differ_and_are_seeded():
  rng = np.random.default_rng(0)
  inputs = {"x": rng.normal(size=(70, 6)).astype(np.float32)}
  mesh = parallel.make_mesh(1)
  outs = {}
  for rate in (0.0, 0.5):
    model = MultimodalClassifier((ModalitySpec("x", (6,)),), num_classes=3, width=8,
                                 hidden=(16,), dropout=rate)
    trainer = Trainer(model, optax.adam(1e-2), batch_size=16, num_epochs=1,
                      eval_batch_size=32, mesh=mesh)
    params = trainer.init(jax.random.key(0), {"x": inputs["x"][:1]}).params
    mc = trainer.predict_mc(params, inputs, jax.random.key(3), 5)
    assert mc.shape == (5, 70, 3)
    np.testing.assert_allclose(mc.sum(-1), 1.0, atol=1e-5)
    again = trainer.predict_mc(params, inputs, jax.random.key(3), 5)
    np.testing.assert_array_equal(mc, again)
    outs[rate] = (mc, trainer.predict(params, inputs)["fused_probs"])
  mc, det = outs[0.0]
  np.testing.assert_allclose(mc, np.broadcast_to(det, mc.shape), atol=1e-6)
  mc, det = outs[0.5]
  assert float(jnp.abs(mc[0] - mc[1]).max()) > 1e-3  # passes see different masks


def test_training_in_chunks_for_progress_compiles_once_and_equals_one_call():
  seen = []
  inputs, labels, whole = _problem()
  _, _, chunked = _problem(trainer_class=functools.partial(
      _ChunksTracedOnce, epoch_callback=lambda e, loss: seen.append((e, loss))))
  example = jax.tree.map(lambda v: v[:1], inputs)
  mask = np.arange(len(labels)) % 2 == 0
  (state, log), (chunked_state, chunked_log) = [  # chunked: 6 calls of one epoch each
      t.train(t.init(jax.random.key(0), example), jax.random.key(1), inputs, labels, mask)
      for t in (whole, chunked)]
  np.testing.assert_allclose(chunked_log.epoch_loss, log.epoch_loss, rtol=1e-6)
  assert [e for e, _ in seen] == list(range(6))
  np.testing.assert_allclose([loss for _, loss in seen], log.epoch_loss, rtol=1e-6)
  for a, b in zip(jax.tree.leaves(chunked_state.params), jax.tree.leaves(state.params)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_later_run_of_the_same_configuration_reuses_the_compiled_trainer():
  from conftest import make_tiny_config  # pylint: disable=g-import-not-at-top
  from rlmba_jax.data import load_dataset  # pylint: disable=g-import-not-at-top
  from rlmba_jax.experiment import start  # pylint: disable=g-import-not-at-top
  from rlmba_jax.models import build_model  # pylint: disable=g-import-not-at-top

  def trainer_for(callback=None, **overrides):
    config = make_tiny_config(**overrides)
    model = build_model(config.model, data.modalities, data.num_classes)
    return start.make_trainer(config, model, data, parallel.make_mesh(1), callback)

  data = load_dataset(make_tiny_config().data)
  first, report = trainer_for(), lambda e, loss: None
  again = trainer_for(report, **{"al.strategy": "entropy", "seed": 3})  # same programs
  assert again._train_jit is first._train_jit  # pylint: disable=protected-access
  assert again.epoch_callback is report and first.epoch_callback is None
  for other in ({"train.num_epochs": 7}, {"model.width": 16}, {"model.head": "evidential"}):
    other_trainer = trainer_for(**other)
    assert other_trainer._train_jit is not first._train_jit  # pylint: disable=protected-access
  unhashable = MultimodalClassifier(data.modalities, data.num_classes, hidden=[16])
  config = make_tiny_config()
  assert start.make_trainer(config, unhashable, data, parallel.make_mesh(1)).model is unhashable
