"""grain pipelines for data sets that are read record by record instead of held in memory.

The labelled subset is an index sampler over a random-access source (``tfds.data_source``
or any ``__len__``/``__getitem__`` object); each host reads its own shard of the indices;
batches have a fixed size with a ``_mask`` marking padding, so jitted steps compile once.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np


def _pad_batch(batch: Mapping[str, np.ndarray], batch_size: int) -> dict[str, np.ndarray]:
  n = len(next(iter(batch.values())))
  out = {}
  for key, value in batch.items():
    value = np.asarray(value)
    if n < batch_size:
      pad = np.zeros((batch_size - n,) + value.shape[1:], value.dtype)
      value = np.concatenate([value, pad])
    out[key] = value
  out["_mask"] = np.arange(batch_size) < n
  return out


def index_batches(source: Any, indices: Sequence[int], *, batch_size: int, seed: int,
                  num_epochs: int = 1, shuffle: bool = True, shard_index: int = 0,
                  shard_count: int = 1, transform: Callable[[dict], dict] | None = None,
                  record_transform: Callable[[dict, Any], dict] | None = None,
                  augment: bool = False, worker_count: int = 0,
                  pad_to_multiple: bool = False) -> Iterator[dict[str, np.ndarray]]:
  """Yields fixed-size batches of ``source[i]`` for ``i`` in ``indices``.

  Args:
    source: random-access records (dicts of arrays), e.g. ``tfds.data_source(...)``.
    indices: which records to read (e.g. the labelled subset of the pool).
    batch_size: per-host batch size; the last batch of each epoch is padded and masked.
    seed: shuffling seed (epoch e uses a permutation derived from ``seed`` and ``e``).
    num_epochs: passes over ``indices``.
    shuffle: permute the indices every epoch.
    shard_index, shard_count: this host's share (``jax.process_index()``,
      ``jax.process_count()``); hosts read disjoint, equally sized strides.
    transform: per-record decoding, ``record -> dict``, run in grain's workers.
    record_transform: ``(record, rng) -> dict``, decoding and augmentation; ``rng`` is a
      ``numpy.random.Generator`` seeded by ``(seed, epoch, record index)`` when ``augment``
      (so the inputs do not depend on the worker count), else None.
    worker_count: grain worker processes (0 = in this process).
    pad_to_multiple: give every host the same number of indices (repeating the first, and
      masking the repeats) instead of dropping the remainder; for inference.
  """
  import grain  # pylint: disable=g-import-not-at-top

  indices = np.asarray(indices, dtype=np.int64)
  valid = np.ones(len(indices), bool)
  if shard_count > 1:
    if pad_to_multiple:
      per_host = -(-len(indices) // shard_count)
      pad = per_host * shard_count - len(indices)
      indices = np.concatenate([indices, np.full(pad, indices[0] if len(indices) else 0)])
      valid = np.concatenate([valid, np.zeros(pad, bool)])
    else:
      per_host = len(indices) // shard_count
    indices = indices[shard_index * per_host:(shard_index + 1) * per_host]
    valid = valid[shard_index * per_host:(shard_index + 1) * per_host]
  for epoch in range(num_epochs):
    order, keep = indices, valid
    if shuffle:
      perm = np.random.default_rng([seed, epoch]).permutation(len(indices))
      order, keep = indices[perm], valid[perm]
    ds = grain.MapDataset.range(len(order)).map(
        functools.partial(_read, source=source, order=order, keep=keep))
    if transform is not None:
      ds = ds.map(transform)
    if record_transform is not None:
      ds = ds.map(functools.partial(_apply_record_transform, fn=record_transform,
                                    seed=seed if augment else None, epoch=epoch))
    ds = ds.batch(batch_size, drop_remainder=False)
    it = ds.to_iter_dataset()
    if worker_count > 0:
      _ensure_flags_parsed()
      it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))
    for batch in it:
      batch = _pad_batch(batch, batch_size)
      if "_keep" in batch:
        batch["_mask"] = batch["_mask"] & batch.pop("_keep").astype(bool)
      yield batch


def _ensure_flags_parsed() -> None:
  """grain's worker processes read absl flags; outside ``absl.app`` (notebooks, tests, a
  user's script) nobody parsed them, so take the defaults."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


def _read(i: int, *, source: Any, order: np.ndarray, keep: np.ndarray) -> dict:
  record = dict(source[int(order[i])])
  if not keep.all():
    record["_keep"] = np.bool_(keep[i])
  record["_index"] = np.int64(order[i])
  return record


def _apply_record_transform(record: dict, *, fn: Callable, seed: int | None,
                            epoch: int) -> dict:
  index = int(record["_index"])
  rng = None if seed is None else np.random.default_rng([seed, epoch, index])
  out = fn(record, rng)
  out["_index"] = record["_index"]
  if "_keep" in record:
    out["_keep"] = record["_keep"]
  return out
