"""Jitted training and inference of the multimodal classifier over a device mesh.

Shapes never depend on how many examples are labelled: training walks the whole pool with a
labelled mask (labelled examples first, in a fresh random order each epoch), so ``train`` is
compiled once per run whatever the round. Batches are sharded over the mesh's data axis and
parameters replicated; the same code runs on 1 or N devices.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from rlmba_jax import fusion as fusion_lib
from rlmba_jax import parallel

Inputs = Mapping[str, jnp.ndarray]


class TrainState(NamedTuple):
  params: Any
  opt_state: Any


class TrainLog(NamedTuple):
  """Per-epoch training statistics. ``epoch_loss``, ``epoch_grad_norm``: ``[E]``."""
  epoch_loss: jnp.ndarray
  epoch_grad_norm: jnp.ndarray
  num_steps: jnp.ndarray


def multimodal_cross_entropy(outputs: Mapping[str, Any], labels: jnp.ndarray,
                             weights: jnp.ndarray, epoch: jnp.ndarray | None = None
                             ) -> jnp.ndarray:
  """Mean of the fused and every unimodal cross-entropy (the paper's training loss).

  Args:
    outputs: the classifier's outputs (``fused_logits [B, C]``, ``logits`` m -> ``[B, C]``).
    labels: ``[B]`` int class labels.
    weights: ``[B]`` example weights (0 for padding).

  Returns:
    scalar: sum_b weights_b * (CE_fused + sum_m CE_m)_b / (M + 1) / sum_b weights_b.
  """
  del epoch
  chex.assert_shape(labels, outputs["fused_logits"].shape[:1])
  per_head = [optax.softmax_cross_entropy_with_integer_labels(outputs["fused_logits"], labels)]
  per_head += [optax.softmax_cross_entropy_with_integer_labels(l, labels)
               for l in outputs["logits"].values()]
  return _weighted_mean(sum(per_head) / len(per_head), weights)


def _weighted_mean(per_example: jnp.ndarray, weights: jnp.ndarray) -> jnp.ndarray:
  """``sum_b w_b x_b / sum_b w_b`` (0 when every weight is 0, e.g. an all-padding batch)."""
  return jnp.sum(per_example * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def make_evidential_loss(annealing_epochs: float):
  """Mean of the fused and every unimodal evidential loss (TMC's objective, averaged).

  Returns ``loss(outputs, labels, weights, epoch)``; the KL term is annealed by
  ``min(1, epoch / annealing_epochs)`` with ``epoch`` counted from 0 in each round.
  """
  def loss(outputs, labels, weights, epoch):
    chex.assert_shape(labels, outputs["fused_alpha"].shape[:1])
    annealing = fusion_lib.annealing_coefficient(epoch, annealing_epochs)
    per_head = [fusion_lib.evidential_loss(outputs["fused_alpha"], labels, annealing)]
    per_head += [fusion_lib.evidential_loss(a, labels, annealing)
                 for a in outputs["alpha"].values()]
    return _weighted_mean(sum(per_head) / len(per_head), weights)
  return loss


def make_loss(model_cfg, train_cfg):
  """The training loss for the configured heads."""
  if model_cfg.head == "evidential":
    return make_evidential_loss(train_cfg.annealing_epochs)
  return multimodal_cross_entropy


def make_optimizer(train_cfg) -> optax.GradientTransformation:
  parts = []
  if train_cfg.grad_clip_norm > 0:
    parts.append(optax.clip_by_global_norm(train_cfg.grad_clip_norm))
  parts.append(optax.adamw(train_cfg.learning_rate, weight_decay=train_cfg.weight_decay))
  return optax.chain(*parts)


def _global_norm(tree) -> jnp.ndarray:
  """sqrt(sum of squares) over every leaf (optax's norm helpers moved between versions)."""
  return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))


class Trainer:
  """``init``, ``train`` and ``predict`` for one model, compiled once per run.

  Args:
    model: a Flax module mapping ``inputs`` to the classifier's outputs.
    optimizer: an optax transformation.
    batch_size: global batch size (a multiple of the mesh size).
    num_epochs: passes over the labelled set per round.
    eval_batch_size: chunk size for pool/val/test inference (a multiple of the mesh size).
    mesh: the device mesh (axis ``data``).
    loss_fn: ``(outputs, labels, weights, epoch) -> scalar``.
  """

  def __init__(self, model: nn.Module, optimizer: optax.GradientTransformation, *,
               batch_size: int, num_epochs: int, eval_batch_size: int, mesh: Mesh,
               loss_fn=multimodal_cross_entropy):
    n = mesh.devices.size
    for name, value in (("train.batch_size", batch_size),
                        ("train.eval_batch_size", eval_batch_size)):
      if value % n:
        raise ValueError(f"config.{name}={value} is not a multiple of the {n} devices of the "
                         "mesh; choose a multiple so every device gets an equal share")
    self.model, self.optimizer, self.mesh = model, optimizer, mesh
    self.batch_size, self.num_epochs, self.eval_batch_size = (batch_size, num_epochs,
                                                              eval_batch_size)
    self.loss_fn = loss_fn
    self._batch_sharding = parallel.data_sharding(mesh)
    replicated = parallel.replicated(mesh)
    self.init = jax.jit(self._init, out_shardings=replicated)
    self.train = jax.jit(self._train, donate_argnums=(0,))
    self.predict = jax.jit(self._predict)
    self.predict_mc = jax.jit(self._predict_mc, static_argnums=3)

  # -- pure functions (jitted in __init__) ----------------------------------------------

  def _init(self, key: jax.Array, example_inputs: Inputs) -> TrainState:
    params = self.model.init({"params": key}, example_inputs, train=False)["params"]
    return TrainState(params, self.optimizer.init(params))

  def _train(self, state: TrainState, key: jax.Array, inputs: Inputs, labels: jnp.ndarray,
             labelled: jnp.ndarray, modality_weights: jnp.ndarray | None = None
             ) -> tuple[TrainState, TrainLog]:
    """Trains ``num_epochs`` epochs over the examples where ``labelled`` is true.

    Args:
      state: parameters and optimiser state.
      key: the round's training key (shuffling and dropout).
      inputs: modality -> ``[N, ...]`` the whole pool.
      labels: ``[N]``; only labelled entries are read.
      labelled: ``[N]`` bool mask.
      modality_weights: ``[M]`` weights for the ``evidence`` fusion (None: uniform).
    """
    num_pool = labels.shape[0]
    chex.assert_shape(labelled, (num_pool,))
    bsz = self.batch_size
    num_labelled = jnp.sum(labelled.astype(jnp.int32))
    steps = jnp.maximum((num_labelled + bsz - 1) // bsz, 1)

    def loss_of(params, batch, batch_labels, weights, dropout_key, e):
      outputs = self.model.apply({"params": params}, batch, train=True,
                                 modality_weights=modality_weights,
                                 rngs={"dropout": dropout_key})
      return self.loss_fn(outputs, batch_labels, weights, e)

    def epoch(e, carry):
      state, losses, norms = carry
      epoch_key = jax.random.fold_in(key, e)
      noise = jax.random.uniform(epoch_key, (num_pool,))
      order = jnp.argsort(jnp.where(labelled, noise, 2.0))  # labelled first, shuffled
      order = jnp.concatenate([order, jnp.zeros((bsz,), order.dtype)])

      def step(i, carry):
        state, loss_sum, norm_sum = carry
        idx = jax.lax.dynamic_slice(order, (i * bsz,), (bsz,))
        weights = ((i * bsz + jnp.arange(bsz)) < num_labelled).astype(jnp.float32)
        batch = jax.tree.map(lambda x: x[idx], dict(inputs))
        batch, batch_labels, weights = jax.lax.with_sharding_constraint(
            (batch, labels[idx], weights), self._batch_sharding)
        loss, grads = jax.value_and_grad(loss_of)(
            state.params, batch, batch_labels, weights, jax.random.fold_in(epoch_key, i), e)
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return TrainState(params, opt_state), loss_sum + loss, norm_sum + _global_norm(grads)

      state, loss_sum, norm_sum = jax.lax.fori_loop(0, steps, step, (state, 0.0, 0.0))
      steps_f = steps.astype(jnp.float32)
      return state, losses.at[e].set(loss_sum / steps_f), norms.at[e].set(norm_sum / steps_f)

    zeros = jnp.zeros((self.num_epochs,), jnp.float32)
    state, losses, norms = jax.lax.fori_loop(0, self.num_epochs, epoch, (state, zeros, zeros))
    return state, TrainLog(losses, norms, steps * self.num_epochs)

  def _predict(self, params: Any, inputs: Inputs,
               modality_weights: jnp.ndarray | None = None) -> dict[str, Any]:
    """Deterministic outputs for every row of ``inputs`` (modality -> ``[N, ...]``).

    Rows are processed in chunks of ``eval_batch_size``, each sharded over the mesh.
    """
    return self._chunked_apply(params, inputs, modality_weights, None)

  def _predict_mc(self, params: Any, inputs: Inputs, key: jax.Array, num_passes: int,
                  modality_weights: jnp.ndarray | None = None) -> jnp.ndarray:
    """Fused probabilities of ``num_passes`` forward passes with dropout on (MC dropout).

    Returns ``[num_passes, N, C]``; pass t uses ``fold_in(key, t)``.
    """
    def one_pass(t):
      return self._chunked_apply(params, inputs, modality_weights,
                                 jax.random.fold_in(key, t))["fused_probs"]
    return jax.vmap(one_pass)(jnp.arange(num_passes))

  def _chunked_apply(self, params, inputs, modality_weights, dropout_key):
    n = next(iter(inputs.values())).shape[0]
    chunk = self.eval_batch_size
    num_chunks = -(-n // chunk)
    pad = num_chunks * chunk - n

    def to_chunks(x):
      x = jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1))
      return x.reshape((num_chunks, chunk) + x.shape[1:])

    def apply_chunk(args):
      i, batch = args
      batch = jax.lax.with_sharding_constraint(batch, self._batch_sharding)
      if dropout_key is None:
        return self.model.apply({"params": params}, batch, train=False,
                                modality_weights=modality_weights)
      return self.model.apply({"params": params}, batch, train=True,
                              modality_weights=modality_weights,
                              rngs={"dropout": jax.random.fold_in(dropout_key, i)})

    outputs = jax.lax.map(apply_chunk, (jnp.arange(num_chunks),
                                        jax.tree.map(to_chunks, dict(inputs))))
    return jax.tree.map(lambda y: y.reshape((num_chunks * chunk,) + y.shape[2:])[:n], outputs)
