"""UCI Multiple Features (mfeat): 2,000 handwritten digits seen through six feature views.

The package ships the data (``uci_mfeat/*.csv.gz``, CC BY 4.0, see ``uci_mfeat/LICENSE.md``).
``UciMfeat`` is a TFDS builder that writes it as ArrayRecord; it is read back with
``tfds.data_source`` (no TensorFlow involved).
"""

from __future__ import annotations

import functools
import gzip
import importlib.resources
import io
import os
from typing import Mapping

import numpy as np

from rlmba_jax import extras
from rlmba_jax.data.specs import DatasetInfo, ModalitySpec

VIEWS: Mapping[str, int] = {
    "fou": 76,   # Fourier coefficients of the character shapes
    "fac": 216,  # profile correlations
    "kar": 64,   # Karhunen-Loeve coefficients
    "pix": 240,  # pixel averages in 2x3 windows: a 16x15 image, row-major
    "zer": 47,   # Zernike moments
    "mor": 6,    # morphological features
}
PIX_IMAGE_SHAPE = (16, 15, 1)
NUM_CLASSES = 10
NUM_EXAMPLES = 2000


def packaged_data_dir() -> str:
  """The folder inside the installed package that holds ``mfeat-*.csv.gz``."""
  return str(importlib.resources.files("rlmba_jax.data") / "uci_mfeat")


def read_mfeat_csvs(directory: str | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
  """Reads the six views from ``mfeat-{view}.csv[.gz]`` files.

  Args:
    directory: folder with the CSV files (plain or gzipped); default: the packaged copy.

  Returns:
    ``(views, labels)``: view name -> ``[2000, D_view]`` float32, and ``[2000]`` int32.

  Raises:
    FileNotFoundError / ValueError naming the file when a view is missing, truncated,
    has the wrong width, contains non-finite values, or disagrees on the labels.
  """
  directory = directory or packaged_data_dir()
  views, labels = {}, None
  for view, width in VIEWS.items():
    path = None
    for candidate in (f"mfeat-{view}.csv.gz", f"mfeat-{view}.csv"):
      if os.path.exists(os.path.join(directory, candidate)):
        path = os.path.join(directory, candidate)
        break
    if path is None:
      raise FileNotFoundError(
          f"uci_mfeat: no mfeat-{view}.csv(.gz) in {directory!r}. The package ships these "
          "files; reinstall rlmba_jax (pip install -e .) or point data.manual_dir at a "
          "folder with all six mfeat-*.csv files.")
    try:
      opener = gzip.open if path.endswith(".gz") else open
      with opener(path, "rb") as f:
        raw = f.read()
      table = np.loadtxt(io.BytesIO(raw), delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    except (OSError, EOFError, ValueError) as e:
      raise ValueError(f"uci_mfeat: cannot parse {path!r} ({e}); the file is corrupt. "
                       "Reinstall the package or replace the file.") from e
    if table.shape != (NUM_EXAMPLES, width + 1):
      raise ValueError(f"uci_mfeat: {path!r} has shape {table.shape}, expected "
                       f"({NUM_EXAMPLES}, {width + 1}) (features + label column).")
    if not np.isfinite(table).all():
      bad = np.argwhere(~np.isfinite(table))[0]
      raise ValueError(f"uci_mfeat: {path!r} has a non-finite value at data row {bad[0]}, "
                       f"column {bad[1]}.")
    view_labels = table[:, -1].astype(np.int32)
    if labels is None:
      labels = view_labels
    elif not np.array_equal(labels, view_labels):
      raise ValueError(f"uci_mfeat: the label column of {path!r} disagrees with the other "
                       "views; the rows must be in the same order in every file.")
    views[view] = table[:, :-1].astype(np.float32)
  return views, labels


def modality_specs(views: tuple[str, ...], pix_as_image: bool) -> tuple[ModalitySpec, ...]:
  specs = []
  for view in views:
    if view not in VIEWS:
      raise ValueError(f"uci_mfeat has no view {view!r}; choose from {tuple(VIEWS)}")
    if view == "pix" and pix_as_image:
      specs.append(ModalitySpec(view, PIX_IMAGE_SHAPE, "image"))
    else:
      specs.append(ModalitySpec(view, (VIEWS[view],), "vector"))
  return tuple(specs)


@functools.cache
def builder_class():
  """The TFDS builder class, defined (and registered) on first call: importing this module
  does not import TFDS."""
  tfds = extras.require("tensorflow_datasets", "the uci_mfeat TFDS builder "
                        "(data.source='tfds'; 'files' reads the CSVs without it)")

  class UciMfeat(tfds.core.GeneratorBasedBuilder):
    """UCI Multiple Features: six views of 2,000 handwritten digits (one split, ``train``).

    Every example has the six views as float32 vectors, ``label`` (0-9) and ``_id`` (the row
    index in the original files). Splits into pool/val/test are made by the library
    (``rlmba_jax.data.splits``) with their own seed.
    """

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Six views from the UCI CSV files shipped with rlmba_jax."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Not needed: the data ship with rlmba_jax. A manual_dir, if given, must hold the six "
        "mfeat-*.csv(.gz) files.")

    def _info(self):
      features = {v: tfds.features.Tensor(shape=(d,), dtype=np.float32)
                  for v, d in VIEWS.items()}
      features["label"] = tfds.features.ClassLabel(num_classes=NUM_CLASSES)
      features["_id"] = tfds.features.Scalar(dtype=np.int64)
      return tfds.core.DatasetInfo(
          builder=self,
          description="UCI Multiple Features: handwritten digits in six feature views.",
          features=tfds.features.FeaturesDict(features),
          supervised_keys=None,
          homepage="https://archive.ics.uci.edu/dataset/72/multiple+features",
          license="CC BY 4.0",
          citation="Duin, R. (1998). Multiple Features. UCI Machine Learning Repository. "
                   "https://doi.org/10.24432/C5HC70",
      )

    def _split_generators(self, dl_manager):
      manual = None
      try:
        manual = os.fspath(dl_manager.manual_dir) if dl_manager.manual_dir else None
        if manual and not os.path.isdir(manual):
          manual = None
      except (AssertionError, AttributeError, ValueError):
        manual = None
      return {"train": self._generate_examples(manual)}

    def _generate_examples(self, directory):
      views, labels = read_mfeat_csvs(directory)
      for i in range(NUM_EXAMPLES):
        example = {v: views[v][i] for v in VIEWS}
        example["label"] = int(labels[i])
        example["_id"] = i
        yield i, example

  return UciMfeat



def check_manual_dir(manual_dir: str) -> None:
  """``data.manual_dir`` is optional (the CSVs ship with the package), but if given it must
  be a folder: a misspelt one is an error, never a silent fall-back to the packaged copy."""
  if manual_dir and not os.path.isdir(manual_dir):
    raise FileNotFoundError(f"uci_mfeat: data.manual_dir={manual_dir!r} is not a folder; "
                            "give the folder of the six mfeat-*.csv(.gz) files, or leave it "
                            "empty for the packaged copy")


def read_files(data_cfg) -> dict[str, np.ndarray]:
  """``data.source="files"``: the CSVs of ``data.manual_dir`` (or the packaged copy)."""
  views, labels = read_mfeat_csvs(data_cfg.manual_dir)
  columns = dict(views)
  columns["label"] = labels
  columns["_id"] = np.arange(len(labels), dtype=np.int64)
  return columns


INFO = DatasetInfo(
    name="uci_mfeat", kind="arrays", modalities=tuple(VIEWS),
    modality_specs=lambda data_cfg, names: modality_specs(names, data_cfg.pix_as_image),
    builder_class=builder_class,
    check_manual_dir=check_manual_dir, read_files=read_files,
    source_dir=lambda manual_dir: os.path.abspath(manual_dir or packaged_data_dir()))
