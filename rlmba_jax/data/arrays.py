"""Your own data as arrays: ``config.data.name="arrays"``, no TFDS builder to write.

``config.data.manual_dir`` is a folder holding::

  examples.csv     header ``id,split,label`` (more columns are ignored), one row per example:
                   id     a non-negative integer, unique (the ledger and the query files
                          name examples by it; raw files are looked up by it)
                   split  pool | val | test
                   label  a class name; empty for a pool row nobody has labelled yet
                          (val and test rows must be labelled)
  <modality>.npy   one file per modality, ``[N, ...]`` rows in examples.csv's order:
                   ``[N, D]`` a feature vector (MLP encoder), ``[N, H, W]`` or
                   ``[N, H, W, C]`` an image (CNN), ``[N, T, H, W, C]`` a clip (R(2+1)D)
  <name>.npz       alternatively: each array in it is a modality, named by its key
  classes.txt      optional: one class name per line, in the order of the model's outputs
                   (default: the labels of examples.csv, sorted; numerically when all are
                   numbers)
  images/{id}.*, audio/{id}.*, text/{id}.txt
                   optional: what a person sees for each example in the labelling page

``config.data.modalities=""`` (``configs/arrays.py``) takes every array present. The splits
are the ones examples.csv names (``data.test_size`` / ``data.val_size`` are not used); as
for the built-in data sets, every modality is standardised with the pool's statistics
(``data.standardize``). The pool may be entirely unlabelled: a person then labels it
(``config.al.oracle="person"``, ``person.files``).
"""

from __future__ import annotations

import glob
import os
from typing import Any, Callable, Mapping

import numpy as np

from rlmba_jax import csv_files
from rlmba_jax.data.specs import (DatasetInfo, DatasetSplits, ModalitySpec, MultimodalArrays,
                                  parse_modalities)

EXAMPLES_FILE = "examples.csv"
CLASSES_FILE = "classes.txt"
SPLITS = ("pool", "val", "test")
UNLABELLED = -1  # the label index of a pool row nobody has labelled
# Raw items a person is shown (labelling page), by folder: what kind of item it holds.
RAW_FOLDERS = {"images": "image", "audio": "audio", "text": "text"}


class ArraysError(ValueError):
  """Something wrong in an arrays folder; the message names the file and row."""


def check_folder(manual_dir: str) -> str:
  """The folder, or an ``ArraysError`` saying what it must hold."""
  if not manual_dir:
    raise ArraysError("config.data.name='arrays' reads your files: set "
                      "config.data.manual_dir to the folder holding examples.csv and one "
                      "<modality>.npy per modality (docs/own_data.md)")
  if not os.path.isfile(os.path.join(manual_dir, EXAMPLES_FILE)):
    raise ArraysError(f"{os.path.join(manual_dir, EXAMPLES_FILE)} does not exist; the arrays "
                      "folder needs examples.csv (id,split,label) and one <modality>.npy "
                      "per modality (docs/own_data.md)")
  return os.path.abspath(manual_dir)


def read_examples(path: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
  """``examples.csv`` -> (ids ``[N]``: int64 when every id is an integer, else the texts
  as given (object array); splits ``[N]`` str; labels as written)."""
  rows = csv_files.read_rows(path, ArraysError)
  if not rows:
    raise ArraysError(f"{path} is empty; it needs the header id,split,label")
  header = [h.strip() for h in rows[0]]
  missing = [c for c in ("id", "split", "label") if c not in header]
  if missing:
    raise ArraysError(f"{path}, line 1: the header {header} lacks {missing}; it must name "
                      "the columns id,split,label")
  col = {c: header.index(c) for c in ("id", "split", "label")}
  ids, parsed, splits, labels, seen = [], [], [], [], {}
  for line, row in enumerate(rows[1:], start=2):
    if not row or not any(v.strip() for v in row):
      continue  # a blank line
    if len(row) != len(header):
      raise ArraysError(f"{path}, line {line}: {len(row)} fields, the header has "
                        f"{len(header)}")
    raw_id, split, label = (row[col[c]].strip() for c in ("id", "split", "label"))
    try:
      parsed.append(csv_files.parse_id(raw_id))  # ints only if every id is one (below)
    except ValueError as e:
      raise ArraysError(f"{path}, line {line}: {e}; an id is an integer or a short text "
                        "(a file name, a key)") from None
    example_id = raw_id
    if example_id in seen:
      raise ArraysError(f"{path}, line {line}: id {example_id} repeats line "
                        f"{seen[example_id]}; ids must be unique")
    seen[example_id] = line
    if split not in SPLITS:
      raise ArraysError(f"{path}, line {line}: split {split!r} is not one of "
                        f"{', '.join(SPLITS)}")
    if not label and split != "pool":
      raise ArraysError(f"{path}, line {line}: the {split} row of id {example_id} has no "
                        "label; validation and test rows must be labelled (only pool rows "
                        "may be unlabelled)")
    ids.append(example_id)
    splits.append(split)
    labels.append(label)
  if not ids:
    raise ArraysError(f"{path} has a header but no rows")
  if all(isinstance(i, int) for i in parsed):
    return np.asarray(parsed, np.int64), np.asarray(splits), labels
  # Not all integers: every id is the text as given ("12" stays "12"; lookups use str).
  return np.asarray(ids, dtype=object), np.asarray(splits), labels


def file_fingerprint(folder: str, paths) -> dict[str, str]:
  """``{path relative to folder: sha256 of its bytes}``."""
  import hashlib  # pylint: disable=g-import-not-at-top
  out = {}
  for path in paths:
    with open(path, "rb") as f:
      out[os.path.relpath(path, folder)] = hashlib.file_digest(f, "sha256").hexdigest()
  return out


def _sort_key(name: str):
  try:
    return (0, float(name), name)
  except ValueError:
    return (1, 0.0, name)


def read_class_names(folder: str, labels: list[str]) -> tuple[str, ...]:
  """``classes.txt`` if present (checked against the labels used), else the labels sorted."""
  used = sorted({l for l in labels if l}, key=_sort_key)
  path = os.path.join(folder, CLASSES_FILE)
  if not os.path.exists(path):
    if len(used) < 2:
      raise ArraysError(f"{os.path.join(folder, EXAMPLES_FILE)} names {len(used)} class(es); "
                        f"at least 2 are needed (or list them in {CLASSES_FILE})")
    return tuple(used)
  with open(path, encoding="utf-8") as f:
    names = [l.strip() for l in f if l.strip()]
  repeated = sorted({n for n in names if names.count(n) > 1})
  if repeated:
    raise ArraysError(f"{path} repeats class names {repeated}")
  if len(names) < 2:
    raise ArraysError(f"{path} lists {len(names)} class(es); at least 2 are needed")
  unknown = [l for l in used if l not in names]
  if unknown:
    raise ArraysError(f"{os.path.join(folder, EXAMPLES_FILE)} uses labels {unknown[:5]} that "
                      f"{path} does not list")
  return tuple(names)


def _array_files(folder: str) -> dict[str, tuple[str, str | None]]:
  """modality -> (file, key inside an .npz or None), in name order."""
  found: dict[str, tuple[str, str | None]] = {}
  for path in sorted(glob.glob(os.path.join(folder, "*.npy"))):
    found[os.path.splitext(os.path.basename(path))[0]] = (path, None)
  for path in sorted(glob.glob(os.path.join(folder, "*.npz"))):
    try:
      with np.load(path) as z:
        keys = list(z.files)
    except Exception as e:  # pylint: disable=broad-except
      raise ArraysError(f"{path} cannot be read as an .npz archive ({e})") from e
    for key in keys:
      if key in found:
        raise ArraysError(f"modality {key!r} is given twice: {found[key][0]} and {path}")
      found[key] = (path, key)
  return found


def _load_array(path: str, key: str | None) -> np.ndarray:
  try:
    if key is None:
      return np.load(path, mmap_mode="r", allow_pickle=False)
    with np.load(path, allow_pickle=False) as z:
      return z[key]
  except Exception as e:  # pylint: disable=broad-except
    raise ArraysError(f"{path} cannot be read as a NumPy array ({type(e).__name__}: {e}); "
                      "write it with numpy.save") from e


def _spec(name: str, where: str, x: np.ndarray) -> ModalitySpec:
  if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
    raise ArraysError(f"{where} holds {x.dtype} values; modality arrays must be numbers")
  shape = tuple(int(s) for s in x.shape[1:])
  if 0 in shape or x.ndim < 2:
    raise ArraysError(f"{where} has shape {x.shape}: every example needs at least one "
                      "value; a modality is [N, D] (features), [N, H, W] or [N, H, W, C] "
                      "(images) or [N, T, H, W, C] (clips)")
  if x.ndim == 2:
    return ModalitySpec(name, shape, "vector")
  if x.ndim == 3:
    return ModalitySpec(name, shape + (1,), "image")
  if x.ndim == 4:
    return ModalitySpec(name, shape, "image")
  if x.ndim == 5:
    return ModalitySpec(name, shape, "clip")
  raise ArraysError(f"{where} has shape {x.shape}; a modality is [N, D] (features), "
                    "[N, H, W] or [N, H, W, C] (images) or [N, T, H, W, C] (clips)")


def _check_rows_finite(name: str, where: str, x: np.ndarray, ids: np.ndarray) -> None:
  flat = np.asarray(x).reshape(len(x), -1)
  bad = ~np.isfinite(flat).all(axis=1)
  if bad.any():
    rows = np.flatnonzero(bad)
    raise ArraysError(
        f"{where}: row {rows[0]} (id {ids[rows[0]]}; {len(rows)} row(s) in all) holds NaN or "
        f"infinite values in modality {name!r}. Fix or drop these examples.")


def raw_items(folder: str, ids: np.ndarray) -> dict[str, dict[str, str]]:
  """kind -> {str(id): file} of the raw items present (``images/{id}.*`` ...), for
  display."""
  out: dict[str, dict[str, str]] = {}
  wanted = {str(i) for i in ids}
  for sub, kind in RAW_FOLDERS.items():
    d = os.path.join(folder, sub)
    if not os.path.isdir(d):
      continue
    files = {}
    for f in sorted(os.listdir(d)):
      stem = os.path.splitext(f)[0]
      if stem in wanted:
        files[stem] = os.path.join(d, f)
    if files:
      out[kind] = files
  return out


def load_arrays(data_cfg, standardize: Callable | None = None) -> DatasetSplits:
  """Reads an arrays folder into pool / val / test (``UNLABELLED`` for unlabelled pool
  rows); ``standardize``: ``loading.standardize`` (pool statistics) or None."""
  folder = check_folder(data_cfg.manual_dir)
  examples = os.path.join(folder, EXAMPLES_FILE)
  ids, splits, label_names = read_examples(examples)
  class_names = read_class_names(folder, label_names)
  index = {c: i for i, c in enumerate(class_names)}
  labels = np.asarray([index[l] if l else UNLABELLED for l in label_names], np.int32)
  files = _array_files(folder)
  if not files:
    raise ArraysError(f"{folder} holds no <modality>.npy or .npz file")
  names = (tuple(files) if not str(data_cfg.modalities).strip()
           else parse_modalities(data_cfg.modalities))
  unknown = [n for n in names if n not in files]
  if unknown:
    raise ArraysError(f"config.data.modalities names {unknown}, but {folder} holds arrays "
                      f"for {list(files)}; set config.data.modalities to some of these, or "
                      "'' for all (configs/arrays.py does)")
  specs, inputs = [], {}
  for name in names:
    path, key = files[name]
    where = path if key is None else f"{path}[{key!r}]"
    x = _load_array(path, key)
    if x.shape[:1] != (len(ids),):
      raise ArraysError(f"{where} has {x.shape[0] if x.ndim else 0} rows but {examples} has "
                        f"{len(ids)}; row i of every array is the example on row i of "
                        "examples.csv")
    spec = _spec(name, where, x)
    _check_rows_finite(name, where, x, ids)
    specs.append(spec)
    inputs[name] = np.asarray(x, np.float32).reshape((len(ids),) + spec.shape)
  everything = MultimodalArrays(inputs, labels, ids)
  parts = {s: everything.take(np.flatnonzero(splits == s)) for s in SPLITS}
  if len(parts["pool"]) == 0:
    raise ArraysError(f"{examples} has no pool rows; active learning picks from the pool")
  specs = tuple(specs)
  if standardize is not None and data_cfg.standardize:
    parts = standardize(parts, specs)
  items = raw_items(folder, ids)
  used = [examples] + [p for p in (os.path.join(folder, CLASSES_FILE),) if os.path.exists(p)]
  used += sorted({files[n][0] for n in names})
  return DatasetSplits(fingerprint=file_fingerprint(folder, used), name="arrays", modalities=specs, num_classes=len(class_names),
                       pool=parts["pool"], val=parts["val"], test=parts["test"],
                       class_names=class_names,
                       describe=_describer(folder, files, names, ids, items))


def _describer(folder: str, files: Mapping[str, tuple[str, str | None]],
               names: tuple[str, ...], ids: np.ndarray, items: Mapping[str, Mapping[str, str]]
               ) -> Callable[[Any], dict[str, list[str]]]:
  """``ids -> column -> [what to show]``: each modality's file and row, and raw items."""
  row_of = {str(i): r for r, i in enumerate(ids)}

  def describe(query_ids) -> dict[str, list[str]]:
    out = {}
    for name in names:
      path, key = files[name]
      label = os.path.relpath(path, folder) + (f":{key}" if key else "")
      out[name] = [f"{label}[{row_of[str(i)]}]" for i in query_ids]
    for kind, by_id in items.items():
      out[kind] = [os.path.relpath(by_id[str(i)], folder) if str(i) in by_id else ""
                   for i in query_ids]
    return out

  return describe


def _no_builder():
  raise ArraysError("the arrays data set is read from its folder directly; it has no TFDS "
                    "builder")


INFO = DatasetInfo(
    name="arrays", kind="arrays", modalities=(),
    modality_specs=lambda data_cfg, names: (), builder_class=_no_builder,
    check_manual_dir=check_folder, source_dir=check_folder, load=load_arrays)


def write_demo_folder(root: str, *, labelled_pool: bool = False, pool_size: int = 600,
                      val_size: int = 200, test_size: int = 400, seed: int = 0,
                      class_names: tuple[str, ...] | None = None) -> str:
  """Writes an arrays folder made from the packaged mfeat digits, the way a user would lay
  out their own data: two modalities (``fou``: 76 Fourier features; ``kar``: 64
  Karhunen-Loeve features), ``images/{id}.png`` (the 16 x 15 pixel view, for the labelling
  page), class names ``zero`` ... ``nine`` (or ``class_names``), and the pool unlabelled unless
  ``labelled_pool``. The pool's true labels go to ``truth.csv`` (id,label) beside it, for a
  simulated person; the run never reads that file. Returns ``root``.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from rlmba_jax.data import uci_mfeat  # pylint: disable=g-import-not-at-top

  views, labels = uci_mfeat.read_mfeat_csvs()
  names = class_names or ("zero", "one", "two", "three", "four", "five", "six", "seven",
                          "eight", "nine")
  rng = np.random.default_rng(seed)
  order = rng.permutation(len(labels))[:pool_size + val_size + test_size]
  split = np.asarray(["pool"] * pool_size + ["val"] * val_size + ["test"] * test_size)
  ids = 1000 + np.arange(len(order))
  os.makedirs(os.path.join(root, "images"), exist_ok=True)
  rows = ["id,split,label"]
  truth = ["id,label"]
  for i, row, s in zip(ids, order, split):
    name = names[labels[row]]
    rows.append(f"{i},{s},{name if (s != 'pool' or labelled_pool) else ''}")
    if s == "pool":
      truth.append(f"{i},{name}")
    pix = views["pix"][row].reshape(16, 15)
    Image.fromarray(np.uint8(np.clip(pix * (255 / 6), 0, 255))).resize(
        (60, 64), Image.NEAREST).save(os.path.join(root, "images", f"{i}.png"))
  for view in ("fou", "kar"):
    np.save(os.path.join(root, f"{view}.npy"), views[view][order].astype(np.float32))
  with open(os.path.join(root, EXAMPLES_FILE), "w", encoding="utf-8") as f:
    f.write("\n".join(rows) + "\n")
  with open(os.path.join(root, CLASSES_FILE), "w", encoding="utf-8") as f:
    f.write("\n".join(names) + "\n")
  with open(os.path.join(root, "truth.csv"), "w", encoding="utf-8") as f:
    f.write("\n".join(truth) + "\n")
  return root
