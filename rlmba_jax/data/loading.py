"""Loads a data set named in the config into pool / val / test splits held in memory.

Small data sets (mfeat, av_digits) are read once through ``tfds.data_source`` + grain and
kept as arrays (the trainer puts them on the device). ``streaming.py`` holds the grain
pipeline for data sets that do not fit in memory; both are driven by ``config.data``.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from rlmba_jax import extras
from rlmba_jax.config_choices import DATA_SOURCES as SOURCES
from rlmba_jax.data import builders, record_datasets
from rlmba_jax.data import splits as splits_lib
from rlmba_jax.data.builders import check_source, default_data_dir
from rlmba_jax.data.registry import dataset_info, modality_specs
from rlmba_jax.data.specs import DatasetInfo, DatasetSplits, ModalitySpec, MultimodalArrays


logger = logging.getLogger(__name__)

# data.source of the in-memory data sets: the ArrayRecord copy (tfds.data_source + grain), the
# files, or "auto": the ArrayRecord copy when the [data] extra is installed, else the files.


def _read_tfds_records(info: DatasetInfo, data_dir: str, manual_dir: str | None,
                       batch_size: int = 512) -> dict[str, np.ndarray]:
  """Builds (once) and reads every record of the ``train`` split as column arrays."""
  grain = extras.require("grain", "reading the ArrayRecord copy (data.source='tfds')")
  tfds = extras.require("tensorflow_datasets",
                        "reading the ArrayRecord copy (data.source='tfds')")

  name = info.name
  info.check_manual_dir(manual_dir)  # a clear error before TFDS's own
  builder = info.builder_class()(data_dir=data_dir, file_format="array_record")
  prepared = builder.is_prepared()
  source_folder = info.source_dir(manual_dir)
  if prepared:
    check_source(builder.data_dir, name, source_folder, built_now=False)
  builders.set_tfds_progress(tfds)
  prepare_kwargs = {}
  if manual_dir:
    prepare_kwargs["download_config"] = tfds.download.DownloadConfig(manual_dir=manual_dir)
  try:
    source = tfds.data_source(
        name, split="train", data_dir=data_dir,
        builder_kwargs={"file_format": "array_record"},
        download_and_prepare_kwargs=prepare_kwargs)
    columns: dict[str, list[np.ndarray]] = {}
    for batch in grain.MapDataset.source(source).batch(batch_size):
      for key, value in batch.items():
        columns.setdefault(key, []).append(np.asarray(value))
  except (FileNotFoundError, ValueError) as e:
    if f"{name}:" in str(e):
      raise
    raise RuntimeError(
        f"{name}: reading the prepared ArrayRecord copy under {data_dir!r} failed ({e}). If "
        f"that copy is damaged, delete {os.path.join(data_dir, name)!r} and run again: it "
        "is rebuilt from the source files.") from e
  except (ImportError, extras.MissingExtraError):
    raise
  except Exception as e:  # array_record / protobuf errors have no common base class
    raise RuntimeError(
        f"{name}: reading the prepared ArrayRecord copy under {data_dir!r} failed "
        f"({type(e).__name__}: {e}). Delete {os.path.join(data_dir, name)!r} and run again: "
        "it is rebuilt from the source files.") from e
  if not prepared:
    check_source(builder.data_dir, name, source_folder, built_now=True)
  return {k: np.concatenate(v) for k, v in columns.items()}


def resolve_source(data_cfg, info: DatasetInfo) -> str:
  """``data.source`` with ``"auto"`` made concrete.

  ``"auto"`` reads the ArrayRecord copy when TFDS, grain and array_record (the ``[data]``
  extra) are installed, or when the data set has no files reader (then the read names the
  extra to install); otherwise the files. Both paths give the same arrays
  (``tests/test_data.py``), so the choice never changes a result.
  """
  if data_cfg.source != "auto":
    return data_cfg.source
  if info.read_files is not None and not extras.installed("data"):
    return "files"
  return "tfds"


def _read_columns(info: DatasetInfo, data_cfg) -> dict[str, np.ndarray]:
  source = resolve_source(data_cfg, info)
  if source != data_cfg.source:
    logger.info("%s: data.source=auto reads the %s", info.name,
                "ArrayRecord copy" if source == "tfds" else
                "source files (install rlmba_jax[data] for the ArrayRecord copy)")
  if source == "tfds":
    return _read_tfds_records(info, data_cfg.data_dir or default_data_dir(),
                              data_cfg.manual_dir)
  if source == "files" and info.read_files is not None:
    return info.read_files(data_cfg)
  raise ValueError(f"config.data.source={data_cfg.source!r}: {info.name} reads "
                   f"{'tfds' if info.read_files is None else 'tfds or files'}")


def check_finite(arrays: MultimodalArrays, split: str) -> None:
  """Raises naming the modality and example ids when any input is NaN or infinite."""
  for name, x in arrays.inputs.items():
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    if bad.any():
      ids = arrays.ids[bad]
      raise ValueError(
          f"{split} split: modality {name!r} has NaN/inf values in {bad.sum()} example(s), "
          f"ids {ids[:10].tolist()}{' ...' if len(ids) > 10 else ''}. Fix or drop these "
          "examples in the source data.")


def standardization_stats(pool: MultimodalArrays, specs: tuple[ModalitySpec, ...]
                          ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """modality -> (mean, std) of the pool's inputs: per feature for vectors (a constant
  feature gets std 1, so it is only centred), one mean and std over all pixels for images."""
  stats = {}
  for spec in specs:
    x = pool.inputs[spec.name].astype(np.float64)
    if spec.kind == "image":
      mean, std = x.mean(), x.std()
    else:
      mean, std = x.mean(axis=0), x.std(axis=0)
    std = np.where(std > 1e-6 * (1.0 + np.abs(mean)), std, 1.0)
    stats[spec.name] = (mean, std)
  return stats


def apply_standardization(inputs: dict[str, np.ndarray], stats) -> dict[str, np.ndarray]:
  """``(x - mean) / std`` per modality, as float32."""
  return {k: ((v - stats[k][0]) / stats[k][1]).astype(np.float32) for k, v in inputs.items()}


def standardize(splits: dict[str, MultimodalArrays], specs: tuple[ModalitySpec, ...],
                reference: str = "pool") -> dict[str, MultimodalArrays]:
  """Standardises every modality with statistics of the unlabelled pool
  (``standardization_stats``).

  The pool's inputs are known to the learner before any label is bought, so using them is
  part of pool-based active learning, not a leak.
  """
  stats = standardization_stats(splits[reference], specs)
  return {split: MultimodalArrays(apply_standardization(dict(arrays.inputs), stats),
                                  arrays.labels, arrays.ids)
          for split, arrays in splits.items()}


def row_keys(arrays: MultimodalArrays, rows: np.ndarray) -> list[bytes]:
  """One key per example of ``rows``: the bytes of every modality's input."""
  names = sorted(arrays.inputs)
  flat = [np.ascontiguousarray(arrays.inputs[m][rows]).reshape(len(rows), -1) for m in names]
  return [b"|".join(x[i].tobytes() for x in flat) for i in range(len(rows))]


def _without_copies(everything: MultimodalArrays, pool_idx: np.ndarray,
                    held_out: np.ndarray, name: str) -> np.ndarray:
  """The pool rows whose inputs (every modality) equal no validation or test row: a copy
  of a held-out example in the pool could be labelled and learnt (UCI mfeat holds six
  pairs of identical rows, two of them across its splits)."""
  held = set(row_keys(everything, held_out))
  keep = np.asarray([k not in held for k in row_keys(everything, pool_idx)], bool)
  if not keep.all():
    logger.info("%s: %d pool examples (ids %s) are copies of validation or test examples "
                "and left out of the pool (data.drop_pool_copies)", name,
                int((~keep).sum()), everything.ids[pool_idx[~keep]].tolist())
  return pool_idx[keep]


def long_tail_fractions(num_classes: int, imbalance: float, seed: int) -> np.ndarray:
  """``[C]`` share of each class's pool examples kept for a long tail whose largest class
  is ``imbalance`` times its smallest: ``imbalance ** -(k / (C - 1))`` for the class of rank
  k in a permutation of the classes seeded by ``seed`` (so no digit is always the head)."""
  rank = np.empty(num_classes, int)
  rank[np.random.default_rng([seed, 7919]).permutation(num_classes)] = np.arange(num_classes)
  return imbalance ** (-rank / max(num_classes - 1, 1))


def harder_pool(pool: MultimodalArrays, data_cfg, num_classes: int) -> MultimodalArrays:
  """The pool of the harder settings: ``data.pool_imbalance`` (a long tail: each class
  keeps a seeded random ``long_tail_fractions`` share of its examples) and
  ``data.label_noise`` (that share of the pool's labels replaced, once and for all, by
  another class drawn at random: what a simulated annotator who is wrong that often
  answers). Seeded by ``data.split_seed``: every run of a comparison sees the same pool."""
  imbalance, noise = float(data_cfg.pool_imbalance), float(data_cfg.label_noise)
  if imbalance > 1.0:
    keep_share = long_tail_fractions(num_classes, imbalance, data_cfg.split_seed)
    rng = np.random.default_rng([data_cfg.split_seed, 15485863])
    keep = []
    for c in range(num_classes):
      rows = np.flatnonzero(pool.labels == c)
      count = max(1, int(round(len(rows) * keep_share[c]))) if len(rows) else 0
      keep.append(np.sort(rng.permutation(rows)[:count]))
    pool = pool.take(np.sort(np.concatenate(keep)))
    logger.info("%s: long-tailed pool (%.0f:1), %d examples; per class %s", data_cfg.name,
                imbalance, len(pool), np.bincount(pool.labels, minlength=num_classes).tolist())
  if noise > 0.0:
    rng = np.random.default_rng([data_cfg.split_seed, 104729])
    wrong = rng.random(len(pool)) < noise
    shift = rng.integers(1, num_classes, len(pool))
    labels = np.where(wrong, (pool.labels + shift) % num_classes, pool.labels).astype(np.int32)
    pool = MultimodalArrays(pool.inputs, labels, pool.ids)
    logger.info("%s: %d of %d pool labels wrong (data.label_noise=%.2f)", data_cfg.name,
                int(wrong.sum()), len(pool), noise)
  return pool


def load_dataset(data_cfg, *, progress: bool = False) -> DatasetSplits:
  """Reads ``config.data`` into pool / val / test; ``progress`` shows TFDS's bars while a
  prepared copy is built.

  The split is stratified and seeded by ``data.split_seed`` (not the experiment seed), so
  every run of a comparison sees the same test and validation sets. The paper's data sets
  (``kind="records"`` in the registry) stay on disk: their splits are
  ``records.RecordSplit`` s.
  """
  with builders.build_progress(progress):
    return _load_dataset(data_cfg)


def _load_dataset(data_cfg) -> DatasetSplits:
  info = dataset_info(data_cfg.name)
  if info.load is not None:
    return info.load(data_cfg, standardize)
  specs = modality_specs(data_cfg)
  if info.kind == "records":
    return record_datasets.load_record_dataset(data_cfg, info, specs)
  names = tuple(s.name for s in specs)
  columns = _read_columns(info, data_cfg)
  order = np.argsort(columns["_id"], kind="stable")
  columns = {k: np.asarray(v)[order] for k, v in columns.items()}
  labels = columns["label"].astype(np.int32)
  ids = columns["_id"].astype(np.int64)
  n = len(labels)
  if data_cfg.test_size + data_cfg.val_size >= n:
    raise ValueError(f"config.data.test_size + val_size = "
                     f"{data_cfg.test_size + data_cfg.val_size} leaves no pool out of {n}")
  if "is_test" in columns:  # an official test split (av_digits: FSDD's index 0-4)
    is_test = columns["is_test"].astype(bool)
    if data_cfg.test_size != int(is_test.sum()):
      raise ValueError(f"{data_cfg.name} has an official test split of {int(is_test.sum())} "
                       f"examples; set config.data.test_size={int(is_test.sum())}")
    rest = np.flatnonzero(~is_test)
    val_rel, pool_rel = splits_lib.stratified_split(labels[rest], (data_cfg.val_size,),
                                                    data_cfg.split_seed)
    test_idx, val_idx, pool_idx = np.flatnonzero(is_test), rest[val_rel], rest[pool_rel]
  else:
    test_idx, val_idx, pool_idx = splits_lib.stratified_split(
        labels, (data_cfg.test_size, data_cfg.val_size), data_cfg.split_seed)
  if info.split_columns is not None:
    columns = info.split_columns(columns, {"test": test_idx, "val": val_idx,
                                           "pool": pool_idx})
  for name in names:
    if name not in columns:
      raise ValueError(f"{data_cfg.name}: the prepared data have no modality {name!r} "
                       f"(have {sorted(k for k in columns if not k.startswith('_'))})")
  inputs = {s.name: columns[s.name].astype(np.float32).reshape((-1,) + s.shape)
            for s in specs}
  everything = MultimodalArrays(inputs, labels, ids)
  check_finite(everything, "source")
  if data_cfg.drop_pool_copies:
    pool_idx = _without_copies(everything, pool_idx, np.concatenate([val_idx, test_idx]),
                               data_cfg.name)
  parts = {"pool": everything.take(pool_idx), "val": everything.take(val_idx),
           "test": everything.take(test_idx)}
  parts["pool"] = harder_pool(parts["pool"], data_cfg, int(labels.max()) + 1)
  if data_cfg.standardize:
    parts = standardize(parts, specs)
  logger.info("%s: pool %d, val %d, test %d; modalities %s", data_cfg.name,
               len(parts["pool"]), len(parts["val"]), len(parts["test"]),
               ", ".join(f"{s.name}{s.shape}" for s in specs))
  return DatasetSplits(name=data_cfg.name, modalities=specs,
                       num_classes=int(labels.max()) + 1, pool=parts["pool"],
                       val=parts["val"], test=parts["test"],
                       class_names=tuple(str(i) for i in range(int(labels.max()) + 1)))
