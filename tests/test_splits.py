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


@settings(max_examples=60, deadline=None)
@given(counts=st.lists(st.integers(2, 40), min_size=2, max_size=8),
       frac=st.floats(0.1, 0.9), seed=st.integers(0, 10_000))
def test_class_counts_are_scikit_learns(counts, frac, seed):
  """The per-class sizes equal scikit-learn's StratifiedShuffleSplit (the same
  largest-remainder rule); only ties between equal remainders, broken at random by both,
  may differ."""
  from sklearn.model_selection import StratifiedShuffleSplit
  labels = np.concatenate([np.full(c, i) for i, c in enumerate(counts)])
  n, k = len(labels), len(counts)
  size = min(max(int(frac * n), k), n - k)
  remainders = np.round(size * np.asarray(counts) / n % 1.0, 9)
  if size < k or len(np.unique(remainders)) < k:
    return  # scikit-learn refuses size < classes; tied remainders are broken at random
  part, _ = stratified_split(labels, (size,), seed)
  _, theirs = next(StratifiedShuffleSplit(1, test_size=size, random_state=seed).split(
      np.zeros(n), labels))
  np.testing.assert_array_equal(np.bincount(labels[part], minlength=k),
                                np.bincount(labels[theirs], minlength=k))


def test_what_scikit_learn_refuses_is_split():
  """A class of one example, or a part smaller than the number of classes (a small
  validation set of your own data): scikit-learn raises, this split does not."""
  one = np.array([0, 0, 0, 1, 1, 1, 2])
  part, rest = stratified_split(one, (3,), seed=0)
  assert len(part) == 3 and len(rest) == 4
  want = 3 * np.bincount(one) / len(one)  # [1.29, 1.29, 0.43]
  assert np.all(np.abs(np.bincount(one[part], minlength=3) - want) < 1.0)
  ten = np.repeat(np.arange(10), 5)
  small, _ = stratified_split(ten, (5,), seed=0)
  assert len(small) == 5 and len(np.unique(ten[small])) == 5
