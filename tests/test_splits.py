import numpy as np
from hypothesis import given, settings, strategies as st

from rlmba_jax.data.splits import stratified_split


def test_mfeat_protocol_sizes_are_exactly_stratified():
  labels = np.repeat(np.arange(10), 200)
  test, val, pool = stratified_split(labels, (400, 200), seed=0)
  assert (len(test), len(val), len(pool)) == (400, 200, 1400)
  assert np.all(np.bincount(labels[test]) == 40)
  assert np.all(np.bincount(labels[val]) == 20)
  assert np.all(np.bincount(labels[pool]) == 140)
  assert len(np.unique(np.concatenate([test, val, pool]))) == 2000


def test_seed_fixes_the_split():
  labels = np.repeat(np.arange(10), 200)
  a = stratified_split(labels, (400, 200), seed=0)
  b = stratified_split(labels, (400, 200), seed=0)
  c = stratified_split(labels, (400, 200), seed=1)
  assert all(np.array_equal(x, y) for x, y in zip(a, b))
  assert not np.array_equal(a[0], c[0])


@settings(max_examples=30, deadline=None)
@given(counts=st.lists(st.integers(1, 30), min_size=2, max_size=6),
       frac=st.floats(0.05, 0.9), seed=st.integers(0, 100))
def test_partition_and_proportions(counts, frac, seed):
  labels = np.concatenate([np.full(c, i) for i, c in enumerate(counts)])
  size = int(frac * len(labels))
  part, rest = stratified_split(labels, (size,), seed)
  assert len(part) == size
  assert len(np.intersect1d(part, rest)) == 0
  assert len(part) + len(rest) == len(labels)
  got = np.bincount(labels[part], minlength=len(counts))
  want = size * np.asarray(counts) / len(labels)
  assert np.all(np.abs(got - want) < 1.0 + 1e-9)
