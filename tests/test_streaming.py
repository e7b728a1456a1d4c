import numpy as np

from rlmba_jax.data.streaming import index_batches


def _source(n=20):
  return [{"x": np.full((2,), i, np.float32), "label": np.int64(i % 3)} for i in range(n)]


def test_batches_cover_the_indices_once_per_epoch_with_padding_masked():
  indices = [1, 4, 5, 7, 9, 12, 13]
  batches = list(index_batches(_source(), indices, batch_size=3, seed=0, num_epochs=2))
  assert len(batches) == 6  # ceil(7 / 3) per epoch
  for epoch in (batches[:3], batches[3:]):
    seen = np.concatenate([b["x"][b["_mask"], 0] for b in epoch]).astype(int)
    assert sorted(seen.tolist()) == indices
  assert all(b["x"].shape == (3, 2) for b in batches)
  assert batches[2]["_mask"].tolist() == [True, False, False]


def test_seeded_shuffle_and_host_shards_are_disjoint():
  indices = list(range(16))
  a = [b["x"][:, 0].tolist() for b in index_batches(_source(), indices, batch_size=4, seed=3)]
  b = [b["x"][:, 0].tolist() for b in index_batches(_source(), indices, batch_size=4, seed=3)]
  assert a == b
  shards = [np.concatenate([b["x"][b["_mask"], 0] for b in index_batches(
      _source(), indices, batch_size=4, seed=3, shard_index=h, shard_count=2)])
            for h in range(2)]
  assert set(shards[0].tolist()).isdisjoint(shards[1].tolist())
  assert len(shards[0]) == len(shards[1]) == 8


def test_global_batches_do_not_depend_on_the_host_count():
  """Two hosts with per-host batch 3 assemble exactly one host's batches of 6, padding and
  all, so a multi-host run trains on the same batches as a single-process one."""
  indices = list(range(2, 15))
  one = list(index_batches(_source(), indices, batch_size=6, seed=5, num_epochs=2))
  hosts = [list(index_batches(_source(), indices, batch_size=3, seed=5, num_epochs=2,
                              shard_index=h, shard_count=2)) for h in range(2)]
  assert len(one) == len(hosts[0]) == len(hosts[1]) == 6
  for whole, *parts in zip(one, *hosts):
    for key in ("x", "_mask", "_index", "_epoch"):
      np.testing.assert_array_equal(whole[key], np.concatenate([p[key] for p in parts]))


def test_transform_runs_per_record():
  out = list(index_batches(_source(), [2, 3], batch_size=2, seed=0, shuffle=False,
                           transform=lambda r: {"x": r["x"] * 10, "label": r["label"]}))
  assert out[0]["x"][:, 0].tolist() == [20.0, 30.0]
