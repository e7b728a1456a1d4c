"""Training and inference over data sets that stay on disk (``data.records.RecordSplit``).

Same interface as ``Trainer`` (``init``, ``train``, ``predict``, ``predict_mc``, ``put``,
``example``), so the active-learning loop is the same code for both. The labelled subset is
an index sampler over the pool's records: grain reads, decodes and augments them in worker
processes (``train.data_workers``) while the accelerator runs the previous step; each host
reads its own shard of the indices and the per-host batches are assembled into one global
batch sharded over the mesh (``jax.make_array_from_process_local_data``). Steps are jitted
once per run (fixed batch shape; the last batch of an epoch is padded and masked).
"""

from __future__ import annotations

from typing import Any, Iterator

import jax
import jax.experimental.multihost_utils  # pylint: disable=unused-import
import jax.numpy as jnp
import numpy as np

from rlmba_jax import parallel
from rlmba_jax.data.records import RecordSplit
from rlmba_jax.data.streaming import index_batches, shard_sizes
from rlmba_jax.train.trainer import Trainer, TrainLog, TrainState


class StreamingTrainer(Trainer):
  """``Trainer`` whose inputs are ``RecordSplit`` s read through grain.

  Args (besides ``Trainer``'s):
    train_transform: ``(record, rng) -> {modality: array, "label": int}`` with augmentation.
    eval_transform: the deterministic version (``rng`` is None).
    data_workers: grain worker processes (0 = decode in this process).
    seed: the run's seed (augmentation draws are seeded by it, the round and the epoch).
  """

  def __init__(self, model, optimizer, *, train_transform, eval_transform,
               data_workers: int = 0, **kwargs):
    super().__init__(model, optimizer, **kwargs)
    self.train_transform, self.eval_transform = train_transform, eval_transform
    self.data_workers = data_workers
    self._step_jit = jax.jit(self._step, donate_argnums=(0,))
    self._apply_jit = jax.jit(self.apply_eval)

  # -- placement ----------------------------------------------------------------------

  def put(self, split: RecordSplit) -> RecordSplit:
    return split

  def put_labels(self, split: RecordSplit) -> np.ndarray:
    """``[N]`` labels by pool position, on the host: training reads them instead of the
    records' own (a person's answers; the same values when the data set answers)."""
    return np.asarray(split.labels, np.int32)

  def example(self, split: RecordSplit) -> dict[str, np.ndarray]:
    inputs = self.eval_transform(dict(split[0]), None)
    return {k: np.asarray(v)[None] for k, v in inputs.items() if k != "label"}

  def _batches(self, split: RecordSplit, positions: np.ndarray, *, batch_size: int,
               seed: int, shuffle: bool, augment: bool, num_epochs: int = 1
               ) -> Iterator[dict[str, np.ndarray]]:
    """``num_epochs`` passes over ``split``'s records at ``positions``: fixed-size per-host
    batches (``_mask`` marks padding), augmented with draws seeded by ``(seed, epoch,
    position)``; one grain pipeline (workers start once)."""
    hosts = jax.process_count()
    if batch_size % hosts:
      raise ValueError(f"batch size {batch_size} does not split over {hosts} hosts")
    transform = self.train_transform if augment else self.eval_transform
    return index_batches(
        split, positions, batch_size=batch_size // hosts,
        seed=seed, num_epochs=num_epochs, shuffle=shuffle, shard_index=jax.process_index(),
        shard_count=hosts, record_transform=transform, augment=augment,
        worker_count=self.data_workers)

  def _global(self, batch: dict[str, np.ndarray]):
    """Per-host batch -> global arrays sharded over the mesh's data axis."""
    inputs = {k: v for k, v in batch.items() if not k.startswith("_") and k != "label"}
    arrays = (inputs, batch["label"].astype(np.int32), batch["_mask"].astype(np.float32))
    sharding = self._batch_sharding
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), arrays)

  # -- training -----------------------------------------------------------------------

  def train(self, state: TrainState, key: jax.Array, split: RecordSplit,
            labels: Any, labelled, modality_weights=None) -> tuple[TrainState, TrainLog]:
    """``num_epochs`` epochs over the labelled records (positions where ``labelled``), with
    ``labels`` (``[N]`` by pool position, ``put_labels``) or, if None, the records'."""
    by_position = None if labels is None else np.asarray(labels, np.int32)
    positions = np.flatnonzero(np.asarray(jax.device_get(labelled)))
    hosts = jax.process_count()
    _, steps = shard_sizes(len(positions), self.batch_size // hosts, hosts)
    seed = int(jax.random.randint(key, (), 0, 2 ** 31 - 1))
    losses = [0.0] * self.num_epochs
    norms = [0.0] * self.num_epochs
    batches = self._batches(split, positions, batch_size=self.batch_size, seed=seed,
                            shuffle=True, augment=True, num_epochs=self.num_epochs)
    for k, batch in enumerate(batches):
      e, i = divmod(k, steps)
      if by_position is not None:
        batch["label"] = by_position[batch["_index"]]
      inputs, batch_labels, weights = self._global(batch)
      factor = (None if self.schedule is None
                else self.schedule(jnp.int32(e), jnp.int32(i), jnp.int32(steps)))
      state, loss, norm = self._step_jit(state, inputs, batch_labels, weights,
                                         jax.random.fold_in(jax.random.fold_in(key, e), i),
                                         jnp.int32(e), factor, modality_weights)
      losses[e] = losses[e] + loss
      norms[e] = norms[e] + norm
      if self.epoch_callback is not None and i == steps - 1:
        self.epoch_callback(e, losses[e] / steps)
    losses = [x / steps for x in losses]
    norms = [x / steps for x in norms]
    log = TrainLog(jnp.stack([jnp.asarray(x, jnp.float32) for x in losses]),
                   jnp.stack([jnp.asarray(x, jnp.float32) for x in norms]),
                   jnp.int32(steps * self.num_epochs))
    return state, log

  # -- inference ----------------------------------------------------------------------

  def _collect(self, split: RecordSplit, fn) -> Any:
    """Runs ``fn(inputs, batch index) -> outputs`` over every record of ``split`` in order;
    returns the outputs as ``[N, ...]`` arrays, rows split over the mesh (``put_rows``)."""
    n = len(split)
    hosts = jax.process_count()
    outputs = []
    batches = self._batches(split, np.arange(n), batch_size=self.eval_batch_size, seed=0,
                            shuffle=False, augment=False)
    for b, batch in enumerate(batches):
      inputs, _, _ = self._global(batch)
      out = fn(inputs, b)
      outputs.append(jax.tree.map(
          lambda x: np.asarray(jax.experimental.multihost_utils.process_allgather(x, tiled=True))
          if hosts > 1 else np.asarray(x), out))
    # Batch b gathered across hosts is global rows [b G, (b + 1) G): already in order.
    stacked = jax.tree.map(lambda *xs: np.concatenate(xs)[:n], *outputs)
    return parallel.put_rows(stacked, self.mesh)

  def predict(self, params, split: RecordSplit, modality_weights=None,
              model_state=None) -> dict[str, Any]:
    return self._collect(split, lambda inputs, b: self._apply_jit(
        params, model_state, inputs, modality_weights))

  def predict_mc(self, params, split: RecordSplit, key, num_passes: int,
                 modality_weights=None, model_state=None):
    passes = [self._collect(split, lambda inputs, b, t=t: self._apply_jit(
        params, model_state, inputs, modality_weights,
        jax.random.fold_in(jax.random.fold_in(key, t), b))["fused_probs"])
              for t in range(num_passes)]
    return jnp.stack(passes)
