"""Plain containers describing a multimodal data set held in memory, and the parsers of the
config strings that name modalities (``"fou,pix"``, ``"video=2e-3,audio=1e-3"``)."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Literal, Mapping, NamedTuple

import numpy as np

ModalityKind = Literal["vector", "image", "clip", "tokens"]


class ModalitySpec(NamedTuple):
  """One modality: its name, the shape of one example and how to encode it.

  ``kind`` is ``"vector"`` (shape ``(D,)``, an MLP encoder), ``"image"`` (shape
  ``(H, W, channels)``, a CNN or ResNet), ``"clip"`` (``(T, H, W, 3)``, R(2+1)D) or
  ``"tokens"`` (``(L,)`` int token ids, BERT). ``origin`` says where row 0 of a 2-D example
  goes when it is drawn for a person (matplotlib's ``imshow`` origin): ``"upper"`` for
  pictures, ``"lower"`` for a spectrogram, whose row 0 is its lowest band.
  """
  name: str
  shape: tuple[int, ...]
  kind: ModalityKind = "vector"
  origin: Literal["upper", "lower"] = "upper"


class DatasetInfo(NamedTuple):
  """What the loader needs to know of a data set; one per data set, registered in
  ``data/registry.py``.

  Attributes:
    name: the TFDS name, ``config.data.name``.
    kind: ``"arrays"`` (read whole into memory once, standardised) or ``"records"`` (left on
      disk as ArrayRecord, decoded by grain per batch).
    modalities: the modality names it has (``config.data.modalities`` picks among them).
    modality_specs: ``(config.data, names) -> tuple[ModalitySpec, ...]`` of the modalities
      named, in that order.
    builder_class: ``() -> type``, its TFDS builder (imports TFDS; defined on first call).
    check_manual_dir: ``(manual_dir) -> None``: a clear error naming what is missing, before
      TFDS's own. Called only when the prepared copy must be built.
    read_files: ``(config.data) -> columns``: the ``data.source="files"`` path of an
      ``arrays`` data set (modality -> ``[N, ...]``, ``label``, ``_id``, optional
      ``is_test``), or None.
    write_fixture: ``(root) -> root``: writes a small fixture in the real layout
      (``data.fixture=True``), or None.
    source_dir: ``(manual_dir) -> folder``: the folder whose files make the prepared copy
      (its fingerprint is recorded with the copy and checked on every read).
    load: ``(config.data, standardize) -> DatasetSplits``: a data set read straight from
      its files, splits and all (``arrays``: your own data), or None (the TFDS path).
    split_columns: ``(columns, {"test": idx, "val": idx, "pool": idx}) -> columns``:
      columns that depend on which split each example is in, added once the split is known
      (av_digits pairs each split's recordings with images of its own), or None.
    source_files: ``(manual_dir, ids) -> {column: [path under manual_dir, one per id]}``:
      the original file of each record where the builder can name it (av_digits: the
      recording), shown on the labelling page beside the stored arrays; or None.
  """
  name: str
  kind: Literal["arrays", "records"]
  modalities: tuple[str, ...]
  modality_specs: Callable[[Any, tuple[str, ...]], tuple[ModalitySpec, ...]]
  builder_class: Callable[[], type]
  check_manual_dir: Callable[[str], Any]
  read_files: Callable[[Any], dict] | None = None
  write_fixture: Callable[[str], str] | None = None
  source_dir: Callable[[str], str] = os.path.abspath
  load: Callable[[Any, Any], "DatasetSplits"] | None = None
  split_columns: Callable[[dict, dict], dict] | None = None
  source_files: Callable[[str, Any], dict[str, list[str]]] | None = None


@dataclasses.dataclass(frozen=True)
class MultimodalArrays:
  """Examples of one split as host arrays.

  Attributes:
    inputs: modality name -> ``[N, *spec.shape]`` float32.
    labels: ``[N]`` int32 class indices.
    ids: ``[N]`` int64 example ids, stable across runs (the ledger records these).
  """
  inputs: Mapping[str, np.ndarray]
  labels: np.ndarray
  ids: np.ndarray

  def __post_init__(self):
    n = len(self.labels)
    if self.ids.shape != (n,):
      raise ValueError(f"ids have shape {self.ids.shape}, expected ({n},)")
    for name, x in self.inputs.items():
      if x.shape[0] != n:
        raise ValueError(f"modality {name!r} has {x.shape[0]} rows, labels have {n}")

  def __len__(self) -> int:
    return len(self.labels)

  def take(self, index: np.ndarray) -> "MultimodalArrays":
    return MultimodalArrays(
        inputs={k: v[index] for k, v in self.inputs.items()},
        labels=self.labels[index], ids=self.ids[index])


@dataclasses.dataclass(frozen=True)
class DatasetSplits:
  """A data set split for pool-based active learning.

  ``pool`` is what the learner may ask labels for; ``val`` is the fixed, stratified
  validation set (modality contributions, the policy's state); ``test`` is only reported.
  Splits are ``MultimodalArrays`` (in memory) or ``records.RecordSplit`` (on disk, with
  ``train_transform`` / ``eval_transform`` turning a record into model inputs).
  """
  name: str
  modalities: tuple[ModalitySpec, ...]
  num_classes: int
  pool: "MultimodalArrays | Any"
  val: "MultimodalArrays | Any"
  test: "MultimodalArrays | Any"
  class_names: tuple[str, ...] = ()
  train_transform: Any = None
  eval_transform: Any = None
  build_report: Mapping[str, int] | None = None
  vocab_size: int | None = None  # of the text modality's tokenizer
  # ``ids -> {column: [what to show a person, per id]}`` (query files, labelling page);
  # None: the record ids alone.
  describe: Any = None
  # file -> sha256 of the user's files the splits were read from (own data), recorded by
  # the first run and checked by every later one; None: the data set checks its own.
  fingerprint: Mapping[str, str] | None = None

  @property
  def streamed(self) -> bool:
    return self.train_transform is not None

  @property
  def modality_names(self) -> tuple[str, ...]:
    return tuple(m.name for m in self.modalities)


def parse_modalities(value: Any) -> tuple[str, ...]:
  """Accepts ``"fou,pix"`` or a sequence of names."""
  if isinstance(value, str):
    names = tuple(v.strip() for v in value.split(",") if v.strip())
  else:
    names = tuple(value)
  if not names:
    raise ValueError("config.data.modalities names no modality")
  if len(set(names)) != len(names):
    raise ValueError(f"config.data.modalities repeats a modality: {names}")
  return names


def parse_assignments(value: str, what: str) -> dict[str, str]:
  """``"video=2e-3,audio=1e-3"`` -> ``{"video": "2e-3", "audio": "1e-3"}``."""
  out = {}
  for part in (p.strip() for p in str(value).split(",")):
    if not part:
      continue
    if "=" not in part:
      raise ValueError(f"{what}: {part!r} is not of the form modality=value")
    key, val = (x.strip() for x in part.split("=", 1))
    if not key or not val:
      raise ValueError(f"{what}: {part!r} is not of the form modality=value")
    out[key] = val
  return out
