"""Jitted training and inference of the multimodal classifier over a device mesh.

Shapes never depend on how many examples are labelled: training walks the whole pool with a
labelled mask (labelled examples first, in a fresh random order each epoch), so ``train`` is
compiled once per run whatever the round. Batches are sharded over the mesh's data axis and
parameters replicated; the same code runs on 1 or N devices.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping, NamedTuple

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from rlmba_jax import parallel
from rlmba_jax.train.losses import multimodal_cross_entropy

Inputs = Mapping[str, jnp.ndarray]


class TrainState(NamedTuple):
  """Parameters, optimiser state and the model's other variables (BatchNorm statistics,
  ``{}`` for models without any)."""
  params: Any
  opt_state: Any
  model_state: Any = {}


class TrainLog(NamedTuple):
  """Per-epoch training statistics. ``epoch_loss``, ``epoch_grad_norm``: ``[E]``."""
  epoch_loss: jnp.ndarray
  epoch_grad_norm: jnp.ndarray
  num_steps: jnp.ndarray


def epoch_chunk(num_epochs: int) -> int:
  """Epochs per compiled call when progress is reported: the largest divisor of
  ``num_epochs`` not above a tenth of it (at least 1), so every call has one shape."""
  target = max(1, num_epochs // 10)
  return max(d for d in range(1, target + 1) if num_epochs % d == 0)


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
    schedule: ``(epoch, step, steps_per_epoch) -> learning-rate factor`` or None.
    init_hook: ``variables -> variables`` applied after random initialisation (pretrained
      encoder weights), before the optimiser state is made.
    epoch_callback: ``(epoch, mean loss) -> None`` on the host after each epoch (progress
      bars). Training then runs as about ten compiled calls of ``num_epochs / 10`` epochs
      each (the same epochs, keys and schedule) with the callback between them; None: one
      compiled call per round.
  """

  def __init__(self, model: nn.Module, optimizer: optax.GradientTransformation, *,
               batch_size: int, num_epochs: int, eval_batch_size: int, mesh: Mesh,
               loss_fn=multimodal_cross_entropy, schedule=None, init_hook=None,
               epoch_callback=None):
    n = parallel.data_axis_size(mesh)
    for name, value in (("train.batch_size", batch_size),
                        ("train.eval_batch_size", eval_batch_size)):
      if value % n:
        raise ValueError(f"config.{name}={value} is not a multiple of the {n} devices of the "
                         "mesh; choose a multiple so every device gets an equal share")
    self.model, self.optimizer, self.mesh = model, optimizer, mesh
    self.batch_size, self.num_epochs, self.eval_batch_size = (batch_size, num_epochs,
                                                              eval_batch_size)
    self.loss_fn, self.schedule, self.init_hook = loss_fn, schedule, init_hook
    self.epoch_callback = epoch_callback
    self._batch_sharding = parallel.data_sharding(mesh)
    self._replicated = parallel.replicated(mesh)
    self._init_variables = jax.jit(self._variables_init, out_shardings=self._replicated)
    self._init_optimizer = jax.jit(self.optimizer.init, out_shardings=self._replicated)
    self._train_jit = jax.jit(self._train, donate_argnums=(0,))
    self._chunk = epoch_chunk(num_epochs)
    self._train_chunk_jit = jax.jit(self._train_chunk, donate_argnums=(0,))
    self._predict_jit = jax.jit(self._predict)
    self._predict_mc_jit = jax.jit(self._predict_mc, static_argnums=3)

  def with_host_callbacks(self, *, init_hook=None, epoch_callback=None) -> "Trainer":
    """This trainer, its compiled programs included, with other host-side callbacks (both
    run outside the compiled programs, so nothing is traced again)."""
    other = copy.copy(self)
    other.init_hook, other.epoch_callback = init_hook, epoch_callback
    return other

  def over_seeds(self, seeds) -> "Trainer":
    """This trainer over a leading seed axis: states, keys, labelled masks and modality
    weights carry it, the data (inputs, labels) is shared, and each program is this
    trainer's own mapped over the seeds (``seeds.map``, an ``experiment.seeds.SeedBatch``:
    ``map(fn, in_axes, donate_argnums=)``, ``take``, ``stack``, ``size``, ``sharding``).
    ``init_hook`` runs per seed on the host; ``epoch_callback`` gets the seeds' mean loss.
    """
    other = copy.copy(self)
    other.seed_batch = seeds
    other.per_seed = self  # the single-seed trainer (programs over one seed's state)
    other._init_variables = seeds.map(self._init_variables, (0, None))
    other._init_optimizer = seeds.map(self._init_optimizer, (0,))
    other._train_jit = seeds.map(self._train_jit, (0, 0, None, None, 0, 0),
                                 donate_argnums=(0,))
    other._train_chunk_jit = seeds.map(self._train_chunk_jit,
                                       (0, 0, None, None, 0, 0, None, 0, 0),
                                       donate_argnums=(0,))
    other._predict_jit = seeds.map(self._predict_jit, (0, None, 0, 0))
    single_mc, programs = self._predict_mc_jit, {}

    def predict_mc(params, inputs, key, num_passes, modality_weights, model_state):
      if num_passes not in programs:  # num_passes is static in the single program
        programs[num_passes] = seeds.map(
            lambda p, x, k, w, s: single_mc(p, x, k, num_passes, w, s), (0, None, 0, 0, 0))
      return programs[num_passes](params, inputs, key, modality_weights, model_state)

    other._predict_mc_jit = predict_mc
    other._replicated = seeds.sharding
    return other

  seed_batch = None  # set by ``over_seeds``

  # -- the interface the loop uses (StreamingTrainer implements it over RecordSplits) ----

  def train(self, state: TrainState, key: jax.Array, inputs: Inputs, labels: jnp.ndarray,
            labelled: jnp.ndarray, modality_weights: jnp.ndarray | None = None
            ) -> tuple[TrainState, TrainLog]:
    """``num_epochs`` epochs over the rows where ``labelled [N]`` is true; ``state`` is
    donated. One compiled program per shape."""
    if self.epoch_callback is not None:
      return self._train_in_chunks(state, key, inputs, labels, labelled, modality_weights)
    return self._train_jit(state, key, inputs, labels, labelled, modality_weights)

  def predict(self, params: Any, inputs: Inputs, modality_weights: jnp.ndarray | None = None,
              model_state: Any = None) -> dict[str, Any]:
    """Deterministic outputs for every row of ``inputs`` (see ``_predict``)."""
    return self._predict_jit(params, inputs, modality_weights, model_state)

  def predict_mc(self, params: Any, inputs: Inputs, key: jax.Array, num_passes: int,
                 modality_weights: jnp.ndarray | None = None, model_state: Any = None
                 ) -> jnp.ndarray:
    """``[num_passes, N, C]`` fused probabilities with dropout on (see ``_predict_mc``)."""
    return self._predict_mc_jit(params, inputs, key, num_passes, modality_weights,
                                model_state)

  def init(self, key: jax.Array, example_inputs: Inputs) -> TrainState:
    """Fresh variables (plus ``init_hook``, e.g. pretrained encoders) and optimiser state."""
    variables = self._init_variables(key, example_inputs)
    if self.init_hook is not None:
      if self.seed_batch is None:
        variables = jax.device_put(self.init_hook(jax.device_get(variables)),
                                   self._replicated)
      else:  # the hook reads one seed's variables
        seeds = self.seed_batch
        variables = seeds.stack([self.init_hook(jax.device_get(seeds.take(variables, i)))
                                 for i in range(seeds.size)])
    params = variables["params"]
    model_state = {k: v for k, v in variables.items() if k != "params"}
    return TrainState(params, self._init_optimizer(params), model_state)

  def put(self, arrays) -> Inputs:
    """A split's inputs (``MultimodalArrays``) on the mesh, rows split over the devices
    (``parallel.put_rows``: replicated when the split's size does not divide evenly)."""
    return parallel.put_rows(dict(arrays.inputs), self.mesh)

  def put_labels(self, arrays) -> jnp.ndarray:
    return parallel.put_rows(arrays.labels, self.mesh)

  def example(self, inputs: Inputs) -> Inputs:
    """A batch of one example (shapes for ``init``)."""
    return jax.tree.map(lambda x: x[:1], inputs)

  def fresh_optimizer(self, state: TrainState) -> TrainState:
    """The same variables with a new optimiser state (warm start across rounds)."""
    return TrainState(state.params, self._init_optimizer(state.params), state.model_state)

  # -- pure functions (jitted in __init__) ----------------------------------------------

  def _variables_init(self, key: jax.Array, example_inputs: Inputs) -> dict[str, Any]:
    return dict(self.model.init({"params": key}, example_inputs, train=False))

  def _apply_train(self, params, model_state, batch, dropout_key, modality_weights):
    """Training-mode forward pass: ``(outputs, new model_state)``."""
    variables = {"params": params, **model_state}
    if not model_state:
      return self.model.apply(variables, batch, train=True, modality_weights=modality_weights,
                              rngs={"dropout": dropout_key}), model_state
    outputs, updates = self.model.apply(variables, batch, train=True,
                                        modality_weights=modality_weights,
                                        rngs={"dropout": dropout_key},
                                        mutable=list(model_state))
    return outputs, dict(updates)

  def _step(self, state: TrainState, batch, batch_labels, weights, dropout_key, epoch,
            factor, modality_weights):
    """One optimiser step; returns ``(state, loss, gradient norm)``."""
    def loss_of(params):
      outputs, model_state = self._apply_train(params, state.model_state, batch, dropout_key,
                                               modality_weights)
      return self.loss_fn(outputs, batch_labels, weights, epoch), model_state

    (loss, model_state), grads = jax.value_and_grad(loss_of, has_aux=True)(state.params)
    updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
    if factor is not None:
      updates = jax.tree.map(lambda u: u * factor, updates)
    params = optax.apply_updates(state.params, updates)
    return TrainState(params, opt_state, model_state), loss, optax.tree.norm(grads)

  def _epoch_fn(self, key, inputs: Inputs, labels, labelled, modality_weights):
    """``(epoch, (state, losses, norms)) -> same``: one epoch over the labelled rows (the
    body of the training loop), and the number of steps per epoch."""
    num_pool = labels.shape[0]
    chex.assert_shape(labelled, (num_pool,))
    bsz = self.batch_size
    num_labelled = jnp.sum(labelled.astype(jnp.int32))
    steps = jnp.maximum((num_labelled + bsz - 1) // bsz, 1)

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
        factor = None if self.schedule is None else self.schedule(e, i, steps)
        state, loss, norm = self._step(state, batch, batch_labels, weights,
                                       jax.random.fold_in(epoch_key, i), e, factor,
                                       modality_weights)
        return state, loss_sum + loss, norm_sum + norm

      state, loss_sum, norm_sum = jax.lax.fori_loop(0, steps, step, (state, 0.0, 0.0))
      steps_f = steps.astype(jnp.float32)
      return state, losses.at[e].set(loss_sum / steps_f), norms.at[e].set(norm_sum / steps_f)

    return epoch, steps

  def _train(self, state: TrainState, key: jax.Array, inputs: Inputs, labels: jnp.ndarray,
             labelled: jnp.ndarray, modality_weights: jnp.ndarray | None = None
             ) -> tuple[TrainState, TrainLog]:
    """Trains ``num_epochs`` epochs over the examples where ``labelled`` is true.

    Args:
      state: parameters, optimiser state and model state.
      key: the round's training key (shuffling and dropout).
      inputs: modality -> ``[N, ...]`` the whole pool.
      labels: ``[N]``; only labelled entries are read.
      labelled: ``[N]`` bool mask.
      modality_weights: ``[M]`` weights for the ``evidence`` fusion (None: uniform).
    """
    epoch, steps = self._epoch_fn(key, inputs, labels, labelled, modality_weights)
    zeros = jnp.zeros((self.num_epochs,), jnp.float32)
    state, losses, norms = jax.lax.fori_loop(0, self.num_epochs, epoch, (state, zeros, zeros))
    return state, TrainLog(losses, norms, steps * self.num_epochs)

  def _train_chunk(self, state: TrainState, key: jax.Array, inputs: Inputs,
                   labels: jnp.ndarray, labelled: jnp.ndarray, modality_weights,
                   first: jnp.ndarray, losses: jnp.ndarray, norms: jnp.ndarray):
    """Epochs ``first .. first + chunk - 1`` of ``_train`` (the same epochs, keys and
    schedule), for progress reporting between chunks. -> (state, losses, norms, steps)."""
    epoch, steps = self._epoch_fn(key, inputs, labels, labelled, modality_weights)
    state, losses, norms = jax.lax.fori_loop(first, first + self._chunk, epoch,
                                             (state, losses, norms))
    return state, losses, norms, steps

  def _train_in_chunks(self, state, key, inputs, labels, labelled, modality_weights):
    """``_train`` as ``num_epochs / chunk`` compiled calls, with ``epoch_callback`` on the
    host after each: a few syncs per round, and programs the compilation cache keeps.
    The loss and norm buffers start replicated, as each call returns them, so the first
    call and the later ones share one compiled program."""
    seeds = () if self.seed_batch is None else (self.seed_batch.size,)
    zeros = jax.device_put(jnp.zeros(seeds + (self.num_epochs,), jnp.float32),
                           self._replicated)
    losses, norms, steps = zeros, zeros, None
    for first in range(0, self.num_epochs, self._chunk):
      state, losses, norms, steps = self._train_chunk_jit(
          state, key, inputs, labels, labelled, modality_weights, jnp.int32(first), losses,
          norms)
      done = jax.device_get(losses[..., first:first + self._chunk])
      if seeds:
        done = done.mean(axis=0)  # one bar for all seeds: their mean loss
      for k, loss in enumerate(done):
        self.epoch_callback(first + k, float(loss))
    return state, TrainLog(losses, norms, steps * self.num_epochs)

  def _predict(self, params: Any, inputs: Inputs,
               modality_weights: jnp.ndarray | None = None, model_state: Any = None
               ) -> dict[str, Any]:
    """Deterministic outputs for every row of ``inputs`` (modality -> ``[N, ...]``).

    Rows are processed in chunks of ``eval_batch_size``, each sharded over the mesh.
    ``model_state``: the model's non-parameter variables (``TrainState.model_state``).
    """
    return self._chunked_apply(params, inputs, modality_weights, None, model_state)

  def _predict_mc(self, params: Any, inputs: Inputs, key: jax.Array, num_passes: int,
                  modality_weights: jnp.ndarray | None = None, model_state: Any = None
                  ) -> jnp.ndarray:
    """Fused probabilities of ``num_passes`` forward passes with dropout on (MC dropout).

    Returns ``[num_passes, N, C]``; pass t uses ``fold_in(key, t)``. BatchNorm uses its
    running statistics (only dropout is sampled).
    """
    def one_pass(t):
      return self._chunked_apply(params, inputs, modality_weights,
                                 jax.random.fold_in(key, t), model_state)["fused_probs"]
    return jax.vmap(one_pass)(jnp.arange(num_passes))

  def apply_eval(self, params, model_state, batch, modality_weights, dropout_key=None):
    """Inference on one batch; dropout sampled when ``dropout_key`` is given."""
    variables = {"params": params, **(model_state or {})}
    if dropout_key is None:
      return self.model.apply(variables, batch, train=False, modality_weights=modality_weights)
    return self.model.apply(variables, batch, train=False, modality_weights=modality_weights,
                            mc_dropout=True, rngs={"dropout": dropout_key})

  def _chunked_apply(self, params, inputs, modality_weights, dropout_key, model_state=None):
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
      key = None if dropout_key is None else jax.random.fold_in(dropout_key, i)
      return self.apply_eval(params, model_state, batch, modality_weights, key)

    outputs = jax.lax.map(apply_chunk, (jnp.arange(num_chunks),
                                        jax.tree.map(to_chunks, dict(inputs))))
    rows = parallel.rows_sharding(self.mesh, n)  # outputs stay split by pool row
    return jax.tree.map(
        lambda y: jax.lax.with_sharding_constraint(
            y.reshape((num_chunks * chunk,) + y.shape[2:])[:n], rows), outputs)
