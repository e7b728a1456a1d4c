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

  def take(self, index: np.ndarray) -> "RecordSplit":
    return RecordSplit(self.source, self.rows[index], self.labels[index], self.ids[index])


class PositionedSource:
  """``source[rows[i]]`` with the position ``i`` added as ``_position`` (seeds augmentation)."""

  def __init__(self, source: Any):
    self.source = source

  def __len__(self) -> int:
    return len(self.source)

  def __getitem__(self, row: int) -> dict:
    record = dict(self.source[int(row)])
    record["_row"] = int(row)
    return record
