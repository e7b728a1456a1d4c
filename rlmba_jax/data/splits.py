"""Seeded, stratified splits of a labelled data set."""

from __future__ import annotations

import numpy as np


def stratified_split(labels: np.ndarray, sizes: tuple[int, ...], seed: int
                     ) -> tuple[np.ndarray, ...]:
  """Splits ``arange(N)`` into disjoint index sets of the given sizes, stratified by class.

  Each part gets classes in proportion to their frequency (largest-remainder rounding), so
  a 400-example test set of 10 balanced classes has exactly 40 per class. The remainder
  (everything not in ``sizes``) is returned as the last part.

  Not ``sklearn.model_selection.StratifiedShuffleSplit``, on purpose: its per-class sizes
  follow the same largest-remainder rule (``tests/test_splits.py`` checks that they agree),
  but it refuses a class of one example and a part smaller than the number of classes (a
  small validation set of your own data), splits in two parts rather than ``len(sizes) + 1``,
  and draws other examples for the same seed, which would change the splits of every
  committed report.

  Args:
    labels: ``[N]`` integer class labels.
    sizes: sizes of the leading parts; their sum must be at most ``N``.
    seed: the split seed (independent of the experiment seed, so the test set is fixed).

  Returns:
    ``len(sizes) + 1`` sorted index arrays.
  """
  labels = np.asarray(labels)
  n = len(labels)
  if sum(sizes) > n:
    raise ValueError(f"split sizes {sizes} add up to more than the {n} examples")
  rng = np.random.default_rng(seed)
  classes, counts = np.unique(labels, return_counts=True)
  # Shuffle each class once; parts take consecutive slices of it.
  per_class = {c: rng.permutation(np.flatnonzero(labels == c)) for c in classes}
  offsets = {c: 0 for c in classes}
  parts = []
  remaining = counts.astype(np.int64).copy()
  for size in sizes:
    # Largest-remainder allocation of `size` over the remaining class counts.
    total = remaining.sum()
    exact = size * remaining / max(total, 1)
    alloc = np.floor(exact).astype(np.int64)
    short = size - alloc.sum()
    order = np.lexsort((rng.random(len(classes)), -(exact - alloc)))
    alloc[order[:short]] += 1
    alloc = np.minimum(alloc, remaining)
    part = []
    for c, k in zip(classes, alloc):
      part.append(per_class[c][offsets[c]:offsets[c] + k])
      offsets[c] += k
    remaining -= alloc
    parts.append(np.sort(np.concatenate(part)))
  rest = [per_class[c][offsets[c]:] for c in classes]
  parts.append(np.sort(np.concatenate(rest)))
  return tuple(parts)
