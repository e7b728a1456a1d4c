"""Your own photos, sounds and texts: ``config.data.name="items"``, built into ArrayRecord.

``config.data.manual_dir`` is a folder holding::

  examples.csv       id,split,label: as for ``arrays`` (pool | val | test; an empty label
                     for an unlabelled pool row; val and test rows labelled)
  classes.txt        optional, as for ``arrays``
  images/{id}.jpg    (or .jpeg / .png) a photo: the paper's image encoders (ResNet, CNN)
  audio/{id}.wav     a recording, any rate (resampled to 16 kHz, mono): a log-STFT image
  text/{id}.txt      a text: WordPiece tokens for the BERT encoder

any subset of the three folders (``data.modalities=""`` takes every folder present); every
example needs a file in each chosen folder. The first run builds a TFDS ArrayRecord copy
(under ``data.data_dir``, one copy per source folder; the folder's fingerprint is checked on
every later run); grain then reads it batch by batch with the transforms of the paper's data
sets (``data.image_resize`` / ``image_size`` photo crops, ``data.text_length`` tokens,
``data.audio_seconds`` of audio from the start of each recording). Photos and recordings are
not standardised further (the encoders' own normalisation applies; the log-STFT is
standardised with statistics of up to 64 pool recordings).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from typing import Iterator

import numpy as np

from rlmba_jax import extras
from rlmba_jax.data import arrays as arrays_lib
from rlmba_jax.data import transforms
from rlmba_jax.data.builders import BuildReport, default_data_dir, record_builder_base
from rlmba_jax.data.records import RecordSplit
from rlmba_jax.data.specs import DatasetInfo, DatasetSplits, parse_modalities

logger = logging.getLogger(__name__)

FOLDERS = {"image": "images", "audio": "audio", "text": "text"}
_EXTENSIONS = {"image": (".jpg", ".jpeg", ".png"), "audio": (".wav",), "text": (".txt",)}
_SPLIT_CODES = {s: i for i, s in enumerate(arrays_lib.SPLITS)}


def present_modalities(manual_dir: str) -> tuple[str, ...]:
  return tuple(m for m, sub in FOLDERS.items() if os.path.isdir(os.path.join(manual_dir, sub)))


def check_folder(manual_dir: str) -> str:
  folder = arrays_lib.check_folder(manual_dir)
  if not present_modalities(folder):
    raise arrays_lib.ArraysError(f"{folder} has none of the folders images/, audio/, text/ "
                                 "(docs/own_data.md)")
  return folder


def item_file(manual_dir: str, modality: str, example_id: int) -> str | None:
  folder = os.path.join(manual_dir, FOLDERS[modality])
  for ext in _EXTENSIONS[modality]:
    path = os.path.join(folder, f"{example_id}{ext}")
    if os.path.exists(path):
      return path
  return None


def iter_examples(manual_dir: str, report: BuildReport) -> Iterator[dict]:
  """One record per row of examples.csv, in its order (record index = row)."""
  from rlmba_jax.data.av_clips import read_wave_16k  # pylint: disable=g-import-not-at-top
  from rlmba_jax.data.builders import check_image  # pylint: disable=g-import-not-at-top
  folder = check_folder(manual_dir)
  ids, splits, labels = arrays_lib.read_examples(os.path.join(folder, arrays_lib.EXAMPLES_FILE))
  names = arrays_lib.read_class_names(folder, labels)
  index = {c: i for i, c in enumerate(names)}
  modalities = present_modalities(folder)
  for row, (example_id, split, label) in enumerate(zip(ids, splits, labels)):
    # (a text id is kept by examples.csv, which the loader reads; the record holds its row)
    record = {"_id": row, "split": _SPLIT_CODES[split],
              "example_id": row if isinstance(example_id, str) else int(example_id),
              "label": index[label] if label else arrays_lib.UNLABELLED,
              "is_test": split == "test", "image": b"", "audio": np.zeros(0, np.int16),
              "text": ""}
    for m in modalities:
      path = item_file(folder, m, example_id)
      if path is None:
        raise arrays_lib.ArraysError(
            f"{os.path.join(folder, FOLDERS[m])} has no file for id {example_id} (row "
            f"{row + 2} of examples.csv); every example needs one in each modality folder "
            f"({', '.join(_EXTENSIONS[m])})")
      try:
        if m == "image":
          with open(path, "rb") as f:
            record["image"] = f.read()
          check_image(record["image"])
        elif m == "audio":
          record["audio"] = read_wave_16k(path)
        else:
          with open(path, encoding="utf-8") as f:
            record["text"] = " ".join(f.read().split())
      except (ValueError, UnicodeDecodeError) as e:
        raise arrays_lib.ArraysError(f"{path} (id {example_id}) cannot be read: {e}") from e
    report.kept += 1
    yield record


@functools.cache
def builder_class():
  """The TFDS builder of an items folder (defined on first call: imports TFDS)."""
  tfds = extras.require("tensorflow_datasets", "building a folder of items into ArrayRecord")

  class OwnItems(record_builder_base()):
    """Your photos / recordings / texts listed in examples.csv."""
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Photos as bytes, 10 s of 16 kHz int16 audio, texts."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = ("manual_dir holds examples.csv and images/, audio/ or "
                                    "text/ named by id (rlmba_jax/data/items.py).")

    def class_names(self, manual_dir):
      folder = check_folder(manual_dir)
      _, _, labels = arrays_lib.read_examples(os.path.join(folder, arrays_lib.EXAMPLES_FILE))
      return arrays_lib.read_class_names(folder, labels)

    def examples(self, manual_dir, report):
      return iter_examples(manual_dir, report)

    def _info(self):
      return tfds.core.DatasetInfo(
          builder=self, description="Your own items (rlmba_jax/data/items.py).",
          features=tfds.features.FeaturesDict({
              "image": tfds.features.Tensor(shape=(), dtype=np.object_),
              "audio": tfds.features.Tensor(shape=(None,), dtype=np.int16),
              "text": tfds.features.Text(),
              "label": tfds.features.Scalar(dtype=np.int64),
              "_id": tfds.features.Scalar(dtype=np.int64),
              "example_id": tfds.features.Scalar(dtype=np.int64),
              "split": tfds.features.Scalar(dtype=np.int64),
              "is_test": tfds.features.Scalar(dtype=np.bool_),
          }),
          metadata=tfds.core.MetadataDict(), disable_shuffling=True)

  return OwnItems


def prepared_dir(data_cfg, folder: str) -> str:
  """One prepared copy per source folder, under ``data.data_dir``."""
  digest = hashlib.sha256(os.path.realpath(folder).encode()).hexdigest()[:12]
  return os.path.join(data_cfg.data_dir or default_data_dir(), "own_items", digest)


def _spectrogram_stats(pool: RecordSplit, seconds: float) -> tuple[float, float]:
  """Mean and std of the log-STFT over up to 64 pool recordings (evenly spaced)."""
  probe = transforms.SpectrogramTransform(0.0, 1.0, window_seconds=seconds,
                                          eval_start_seconds=0.0)
  rows = np.unique(np.linspace(0, len(pool) - 1, min(64, len(pool))).astype(int))
  values = np.concatenate([probe(pool[int(r)]["audio"], None).reshape(-1) for r in rows])
  return float(values.mean()), float(values.std() or 1.0)


def load_items(data_cfg, standardize=None) -> DatasetSplits:
  """Builds (once) and opens an items folder as pool / val / test ``RecordSplit`` s."""
  del standardize  # photos, tokens and spectrograms have their own normalisation
  from rlmba_jax.data import record_datasets  # pylint: disable=g-import-not-at-top
  folder = check_folder(data_cfg.manual_dir)
  ids, splits, label_names = arrays_lib.read_examples(
      os.path.join(folder, arrays_lib.EXAMPLES_FILE))
  class_names = arrays_lib.read_class_names(folder, label_names)
  index = {c: i for i, c in enumerate(class_names)}
  labels = np.asarray([index[l] if l else arrays_lib.UNLABELLED for l in label_names],
                      np.int32)
  present = present_modalities(folder)
  names = (present if not str(data_cfg.modalities).strip()
           else parse_modalities(data_cfg.modalities))
  unknown = [n for n in names if n not in present]
  if unknown:
    raise arrays_lib.ArraysError(f"config.data.modalities names {unknown}, but {folder} has "
                                 f"folders for {list(present)} (images/, audio/, text/)")
  copy_cfg = data_cfg.copy_and_resolve_references()
  with copy_cfg.unlocked():
    copy_cfg.data_dir = prepared_dir(data_cfg, folder)
  source, _ = record_datasets.open_source(copy_cfg, INFO, folder)
  if len(source) != len(ids):
    raise arrays_lib.ArraysError(
        f"the prepared copy in {copy_cfg.data_dir} holds {len(source)} records but "
        f"examples.csv lists {len(ids)}; delete that folder to rebuild it")
  parts = {s: np.flatnonzero(splits == s) for s in arrays_lib.SPLITS}
  split = lambda rows: RecordSplit(source, rows.astype(np.int64), labels[rows], ids[rows])
  pool = split(parts["pool"])
  specs = transforms.record_modality_specs(data_cfg, names)
  columns = {}
  if "image" in names:
    columns["image"] = ("image", transforms.PhotoTransform(data_cfg.image_resize,
                                                           data_cfg.image_size))
  if "text" in names:
    vocab = record_datasets.vocab_path(data_cfg, folder)
    columns["text"] = ("text", transforms.TextTransform(vocab, data_cfg.text_length))
  if "audio" in names:
    mean, std = _spectrogram_stats(pool, data_cfg.audio_seconds)
    columns["audio"] = ("audio", transforms.SpectrogramTransform(
        mean, std, window_seconds=data_cfg.audio_seconds, eval_start_seconds=0.0))
  transform = transforms.RecordTransform(columns)
  vocab_size = (len(transforms.tokenizer_for(columns["text"][1].vocab_path).vocab)
                if "text" in columns else None)
  logger.info("items %s: pool %d, val %d, test %d; modalities %s", folder, len(pool),
              len(parts["val"]), len(parts["test"]), ", ".join(names))
  # Query columns by folder name (images, audio, text), for the chosen modalities.
  items = {FOLDERS[kind]: files for kind, files in arrays_lib.raw_items(folder, ids).items()
           if kind in names}
  describe = lambda query_ids: {m: [os.path.relpath(items[m][str(i)], folder)
                                    for i in query_ids] for m in items}
  return DatasetSplits(name="items", modalities=specs, num_classes=len(class_names),
                       pool=pool, val=split(parts["val"]), test=split(parts["test"]),
                       class_names=class_names, train_transform=transform,
                       eval_transform=transform, vocab_size=vocab_size, describe=describe)


INFO = DatasetInfo(
    name="items", kind="records", modalities=tuple(FOLDERS),
    modality_specs=transforms.record_modality_specs, builder_class=builder_class,
    check_manual_dir=check_folder, source_dir=check_folder, load=load_items)


def write_demo_items(root: str, *, pool_size: int = 40, val_size: int = 12,
                     test_size: int = 12, labelled_pool: bool = False, seed: int = 0) -> str:
  """An items folder laid out as a user would (for tests and the README): four classes of
  photos (coloured shapes, ``images/{id}.png``), recordings (a tone per class with noise,
  ``audio/{id}.wav``, 1 s at 8 kHz) and texts (``text/{id}.txt``), with a ``vocab.txt`` so
  the text modality runs without a BERT vocabulary, and ``truth.csv`` for a simulated
  person. Returns ``root``."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from rlmba_jax.data.fixtures import write_wav  # pylint: disable=g-import-not-at-top
  names = ("circle", "square", "stripes", "dots")
  words = {"circle": "round ring wheel", "square": "box corner block",
           "stripes": "line band zebra", "dots": "spot point speck"}
  filler = "the a of and photo sound thing".split()
  rng = np.random.default_rng(seed)
  n = pool_size + val_size + test_size
  split = ["pool"] * pool_size + ["val"] * val_size + ["test"] * test_size
  labels = np.concatenate([np.arange(n - n % 4) % 4, np.arange(n % 4)])
  rng.shuffle(labels)
  for sub in FOLDERS.values():
    os.makedirs(os.path.join(root, sub), exist_ok=True)
  rows, truth = ["id,split,label"], ["id,label"]
  yy, xx = np.mgrid[:40, :40]
  for k in range(n):
    i, c = 500 + k, int(labels[k])
    name = names[c]
    rows.append(f"{i},{split[k]},{name if split[k] != 'pool' or labelled_pool else ''}")
    if split[k] == "pool":
      truth.append(f"{i},{name}")
    shape = [(xx - 20) ** 2 + (yy - 20) ** 2 < 150, (abs(xx - 20) < 11) & (abs(yy - 20) < 11),
             (xx // 5) % 2 == 0, ((xx % 10) < 4) & ((yy % 10) < 4)][c]
    image = np.where(shape[..., None], [200, 60 + 40 * c, 40], [30, 30, 30])
    image = np.clip(image + rng.normal(0, 20, image.shape), 0, 255).astype(np.uint8)
    Image.fromarray(image).save(os.path.join(root, "images", f"{i}.png"))
    t = np.arange(8000) / 8000
    wave = 0.3 * np.sin(2 * np.pi * (300 + 250 * c) * t) + 0.05 * rng.standard_normal(8000)
    write_wav(os.path.join(root, "audio", f"{i}.wav"), wave, 8000)
    text = rng.choice(words[name].split() + filler, size=8)
    with open(os.path.join(root, "text", f"{i}.txt"), "w", encoding="utf-8") as f:
      f.write(" ".join(text) + "\n")
  vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(
      {w for ws in words.values() for w in ws.split()} | set(filler))
  for path, lines in (("examples.csv", rows), ("truth.csv", truth), ("vocab.txt", vocab),
                      ("classes.txt", list(names))):
    with open(os.path.join(root, path), "w", encoding="utf-8") as f:
      f.write("\n".join(lines) + "\n")
  return root
