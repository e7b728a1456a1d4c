"""grain pipelines for data sets that are read record by record instead of held in memory.

The labelled subset is an index sampler over a random-access source (``tfds.data_source``
or any ``__len__``/``__getitem__`` object); each host reads its own shard of the indices;
batches have a fixed size with a ``_mask`` marking padding, so jitted steps compile once.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Iterator, NamedTuple, Sequence

import numpy as np

from rlmba_jax import extras


def shard_sizes(num_indices: int, batch_size: int, shard_count: int = 1) -> tuple[int, int]:
  """``(slots per host, batches per epoch)`` of ``index_batches``: an epoch is
  ``ceil(n / (batch_size * hosts))`` global batches, each host filling ``batch_size`` slots
  of every one."""
  steps = -(-num_indices // (batch_size * shard_count))
  return steps * batch_size, steps


def index_batches(source: Any, indices: Sequence[int], *, batch_size: int, seed: int,
                  num_epochs: int = 1, shuffle: bool = True, shard_index: int = 0,
                  shard_count: int = 1, transform: Callable[[dict], dict] | None = None,
                  record_transform: Callable[[dict, Any], dict] | None = None,
                  augment: bool = False, worker_count: int = 0
                  ) -> Iterator[dict[str, np.ndarray]]:
  """Yields fixed-size batches of ``source[i]`` for ``i`` in ``indices``, epoch after epoch.

  One grain pipeline covers every epoch (worker processes start once). Each epoch the
  indices are permuted (the same permutation on every host) and padded with masked repeats
  to whole global batches of ``batch_size * shard_count``; global batch i is
  ``order[i G:(i + 1) G]`` and host h reads its h-th ``batch_size`` slice. So the global
  batches, their order and their padding do not depend on how many hosts share them (a
  two-host run trains exactly as one host with the same global batch), no example is ever
  dropped, every host runs the same number of steps, and batches never straddle epochs;
  ``_mask`` marks the real entries, ``_index`` the record index.

  Args:
    source: random-access records (dicts of arrays), e.g. ``tfds.data_source(...)``.
    indices: which records to read (e.g. the labelled subset of the pool).
    batch_size: per-host batch size.
    seed: shuffling seed (epoch e uses a permutation derived from ``seed`` and ``e``).
    num_epochs: passes over ``indices``.
    shuffle: permute the indices every epoch (False: in order, for inference).
    shard_index, shard_count: this host's share (``jax.process_index()``,
      ``jax.process_count()``).
    transform: per-record decoding, ``record -> dict``, run in grain's workers.
    record_transform: ``(record, rng) -> dict``, decoding and augmentation; ``rng`` is a
      ``numpy.random.Generator`` seeded by ``(seed, epoch, record index)`` when ``augment``
      (so the inputs do not depend on the worker count), else None.
    worker_count: grain worker processes (0 = in this process).
  """
  grain = extras.require("grain", "streaming an ArrayRecord data set")

  indices = np.asarray(indices, dtype=np.int64)
  if len(indices) == 0:
    return
  plan = _epoch_plan(indices, batch_size, seed, num_epochs, shuffle, shard_index, shard_count)
  ds = grain.MapDataset.range(len(plan.rows)).map(functools.partial(
      _prepare, source=source, plan=plan, transform=transform,
      record_transform=record_transform, seed=seed if augment else None))
  it = ds.batch(batch_size, drop_remainder=False).to_iter_dataset()
  if worker_count > 0:
    _ensure_flags_parsed()
    it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))
  for batch in it:  # the plan is whole batches: every batch is full
    batch = {k: np.asarray(v) for k, v in batch.items()}
    batch["_mask"] = batch.pop("_keep").astype(bool)
    yield batch


def _epoch_plan(indices: np.ndarray, batch_size: int, seed: int, num_epochs: int,
                shuffle: bool, shard_index: int, shard_count: int) -> "_Plan":
  """This host's rows of every epoch's global batches (``index_batches``), padding masked."""
  per_host, steps = shard_sizes(len(indices), batch_size, shard_count)
  rows, keeps, epochs = [], [], []
  for epoch in range(num_epochs):
    order = (np.random.default_rng([seed, epoch]).permutation(indices) if shuffle
             else indices)
    keep = np.ones(len(order), bool)
    pad = per_host * shard_count - len(order)
    order = np.concatenate([order, np.full(pad, order[0])])
    keep = np.concatenate([keep, np.zeros(pad, bool)])
    mine = lambda x: x.reshape(steps, shard_count, batch_size)[:, shard_index].reshape(-1)
    rows.append(mine(order))
    keeps.append(mine(keep))
    epochs.append(np.full(per_host, epoch, np.int32))
  return _Plan(np.concatenate(rows), np.concatenate(keeps), np.concatenate(epochs))


class _Plan(NamedTuple):
  rows: np.ndarray  # record index of every slot, epoch after epoch
  keeps: np.ndarray  # False for padding slots
  epochs: np.ndarray


def _prepare(i: int, *, source: Any, plan: _Plan, transform, record_transform,
             seed: int | None) -> dict:
  row, epoch = int(plan.rows[i]), int(plan.epochs[i])
  record = dict(source[row])
  if transform is not None:
    record = dict(transform(record))
  if record_transform is not None:
    rng = None if seed is None else np.random.default_rng([seed, epoch, row])
    record = dict(record_transform(record, rng))
  record["_keep"] = np.bool_(plan.keeps[i])
  record["_index"] = np.int64(row)
  record["_epoch"] = np.int32(epoch)
  return record


def _ensure_flags_parsed() -> None:
  """grain's worker processes read absl flags; outside ``absl.app`` (notebooks, tests, a
  user's script) nobody parsed them, so take the defaults."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()
