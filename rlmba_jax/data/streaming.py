"""grain pipelines for data sets that are read record by record instead of held in memory.

The labelled subset is an index sampler over a random-access source (``tfds.data_source``
or any ``__len__``/``__getitem__`` object); each host reads its own shard of the indices;
batches have a fixed size with a ``_mask`` marking padding, so jitted steps compile once.
"""

from __future__ import annotations

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
                  worker_count: int = 0) -> Iterator[dict[str, np.ndarray]]:
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
    transform: per-record decoding / augmentation, run in grain's workers.
    worker_count: grain worker processes (0 = in this process).
  """
  import grain  # pylint: disable=g-import-not-at-top

  indices = np.asarray(indices, dtype=np.int64)
  if shard_count > 1:
    per_host = len(indices) // shard_count
    indices = indices[shard_index * per_host:(shard_index + 1) * per_host]
  for epoch in range(num_epochs):
    order = indices
    if shuffle:
      order = np.random.default_rng([seed, epoch]).permutation(indices)
    ds = grain.MapDataset.range(len(order)).map(lambda i, o=order: source[int(o[i])])
    if transform is not None:
      ds = ds.map(transform)
    ds = ds.batch(batch_size, drop_remainder=False)
    it = ds.to_iter_dataset()
    if worker_count > 0:
      it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))
    for batch in it:
      yield _pad_batch(batch, batch_size)
