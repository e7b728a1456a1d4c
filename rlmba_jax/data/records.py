"""Splits of data sets that stay on disk: record indices into a random-access source.

The labels and ids of every example are in memory (the learner's bookkeeping); inputs are
read, decoded and augmented batch by batch by grain (``streaming.index_batches`` with a
``transforms.RecordTransform``), so pools of any size work with constant host memory.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class RecordSplit:
  """One split of a record data set.

  ``len(split)`` and ``split[i]`` make it a random-access source of its own records.

  Attributes:
    source: random-access records (``tfds.data_source``: ``len`` and ``__getitem__``).
    rows: ``[N]`` int64 record positions in ``source``.
    labels: ``[N]`` int32.
    ids: ``[N]`` int64 example ids (the ledger's).
  """
  source: Any
  rows: np.ndarray
  labels: np.ndarray
  ids: np.ndarray

  def __post_init__(self):
    n = len(self.rows)
    if self.labels.shape != (n,) or self.ids.shape != (n,):
      raise ValueError(f"rows {self.rows.shape}, labels {self.labels.shape} and ids "
                       f"{self.ids.shape} disagree")

  def __len__(self) -> int:
    return len(self.rows)

  def __getitem__(self, position: int) -> dict:
    """The record at ``position`` of this split (``source[rows[position]]``): a split is a
    random-access source itself, so grain reads it directly."""
    return self.source[int(self.rows[int(position)])]
