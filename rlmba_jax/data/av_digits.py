"""av_digits: spoken digits (Free Spoken Digit Dataset) paired with 8x8 digit images.

A small real audio-visual data set that runs on a CPU. Each of FSDD's 3,000 recordings
(``{digit}_{speaker}_{index}.wav``, 8 kHz mono, 6 speakers x 10 digits x 50; CC BY-SA 4.0,
Z. Jackson et al.) is paired with a scikit-learn 8x8 handwritten-digit image of the same class
(1,797 images, from the UCI optical digits data, CC BY 4.0).

Version 2.0.0: the pairing is made per split, once the split is known
(``split_images``): within each class the images are permuted (``PAIRING_SEED``) and dealt
out in turn to the class's test recordings, then its validation recordings, then its pool
recordings, each split from its own part of the permutation, so no image is in two splits
(the pool, with about 250 recordings per class and 130 images left, shows each of its
images about twice). Version 1.0.0 dealt the images over all 3,000 recordings whatever
their split: 223 of the 300 test recordings carried an image that a pool or validation
recording also carried, which the image head could memorise.

Audio features, computed when the data set is built (librosa): the waveform at 8 kHz, padded
with zeros or centre-cropped to 1.0 s (8,000 samples); mel power spectrogram with n_fft 256
(32 ms), hop 80 (10 ms), 40 mel bands, centred frames, first 100 frames kept; ``log(mel +
1e-6)``. Shape ``[40, 100, 1]``. Images: pixel values 0-16 as float32, ``[8, 8, 1]``.

Split: FSDD's official test set (recording index 0-4: 300 recordings) is the test split;
validation and pool are stratified from the other 2,700 by the library.
"""

from __future__ import annotations

import functools
import os
import re
from typing import Any

import numpy as np

from rlmba_jax import extras
from rlmba_jax.data.builders import manual_dir_of
from rlmba_jax.data.specs import DatasetInfo, ModalitySpec

SAMPLE_RATE = 8000
CLIP_SAMPLES = 8000
N_FFT, HOP_LENGTH, N_MELS, NUM_FRAMES = 256, 80, 40, 100
AUDIO_SHAPE = (N_MELS, NUM_FRAMES, 1)
IMAGE_SHAPE = (8, 8, 1)
NUM_CLASSES = 10
PAIRING_SEED = 0
OFFICIAL_TEST_INDICES = range(5)
MODALITIES = ("audio", "image")
_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")


def modality_specs(names: tuple[str, ...]) -> tuple[ModalitySpec, ...]:
  shapes = {"audio": AUDIO_SHAPE, "image": IMAGE_SHAPE}
  unknown = [n for n in names if n not in shapes]
  if unknown:
    raise ValueError(f"av_digits has no modality {unknown}; choose from {MODALITIES}")
  # the log-mel's row 0 is its lowest band: drawn at the bottom on the labelling page
  return tuple(ModalitySpec(n, shapes[n], "image", "lower" if n == "audio" else "upper")
               for n in names)


def recordings_dir(manual_dir: str) -> str:
  """The folder holding the wav files: ``manual_dir/recordings`` or ``manual_dir`` itself."""
  if not manual_dir:
    raise FileNotFoundError(
        "av_digits reads the Free Spoken Digit Dataset from data.manual_dir; set "
        "--config.data.manual_dir to the FSDD folder (the one holding recordings/)")
  for candidate in (os.path.join(manual_dir, "recordings"), manual_dir):
    if os.path.isdir(candidate) and any(f.endswith(".wav") for f in os.listdir(candidate)):
      return candidate
  raise FileNotFoundError(f"av_digits: no .wav files in {manual_dir!r} or its recordings/ "
                          "folder; point data.manual_dir at the FSDD folder")


def list_recordings(manual_dir: str) -> list[tuple[str, int, str, int]]:
  """``(path, digit, speaker, index)`` of every recording, sorted; odd names are errors."""
  folder = recordings_dir(manual_dir)
  rows = []
  for name in sorted(os.listdir(folder)):
    if not name.endswith(".wav"):
      continue
    match = _NAME.match(name)
    if not match:
      raise ValueError(f"av_digits: {os.path.join(folder, name)!r} is not named "
                       "{digit}_{speaker}_{index}.wav; rename or remove it")
    rows.append((os.path.join(folder, name), int(match.group(1)), match.group(2),
                 int(match.group(3))))
  return rows


def log_mel(wave: np.ndarray) -> np.ndarray:
  """``[samples]`` at 8 kHz -> ``[40, 100, 1]`` log-mel (see the module docstring)."""
  librosa = extras.require("librosa", "reading the FSDD recordings")
  wave = np.asarray(wave, np.float32)
  if len(wave) >= CLIP_SAMPLES:
    start = (len(wave) - CLIP_SAMPLES) // 2
    wave = wave[start:start + CLIP_SAMPLES]
  else:
    wave = np.pad(wave, (0, CLIP_SAMPLES - len(wave)))
  mel = librosa.feature.melspectrogram(y=wave, sr=SAMPLE_RATE, n_fft=N_FFT,
                                       hop_length=HOP_LENGTH, n_mels=N_MELS)
  return np.log(mel[:, :NUM_FRAMES] + 1e-6).astype(np.float32)[..., None]


def read_wave(path: str) -> np.ndarray:
  soundfile = extras.require("soundfile", "reading the FSDD recordings")
  try:
    wave, rate = soundfile.read(path, dtype="float32", always_2d=False)
  except Exception as e:  # pylint: disable=broad-except  (libsndfile errors vary)
    raise ValueError(f"av_digits: cannot decode {path!r} ({e}); the file is corrupt. "
                     "Replace or remove it.") from e
  if rate != SAMPLE_RATE:
    raise ValueError(f"av_digits: {path!r} is sampled at {rate} Hz, expected {SAMPLE_RATE}")
  if wave.ndim != 1:
    wave = wave.mean(axis=-1)
  if wave.size == 0 or not np.isfinite(wave).all():
    raise ValueError(f"av_digits: {path!r} is empty or holds non-finite samples")
  return wave


@functools.cache
def _digits() -> tuple[np.ndarray, np.ndarray]:
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  digits = load_digits()
  return digits.images.astype(np.float32), digits.target.astype(np.int32)


def split_image_indices(labels: np.ndarray, splits: dict[str, np.ndarray],
                        seed: int = PAIRING_SEED,
                        order: tuple[str, ...] = ("test", "val", "pool")) -> np.ndarray:
  """``[N]`` indices into scikit-learn's digit images, one per example, such that no image
  is given to examples of two splits.

  Within each class c, the images of c are permuted (``seed``); the splits in ``order``
  take consecutive parts of the permutation, each as many images as it has examples of c,
  except the last, which takes every image left and deals them out in turn (so it may show
  an image more than once, never one of another split). ``splits``: split name -> indices
  into ``labels``, covering each example once.
  """
  images, targets = _digits()
  del images
  rng = np.random.default_rng(seed)
  out = np.full(len(labels), -1, np.int64)
  names = [n for n in order if n in splits and len(splits[n])]
  for c in range(NUM_CLASSES):
    perm = rng.permutation(np.flatnonzero(targets == c))
    start = 0
    for k, name in enumerate(names):
      rows = np.asarray(splits[name])[labels[np.asarray(splits[name])] == c]
      if not len(rows):
        continue
      last = k == len(names) - 1
      part = perm[start:] if last else perm[start:start + len(rows)]
      if not last and len(part) < len(rows) or not len(part):
        raise ValueError(f"av_digits: class {c} has {len(perm)} images, too few to give its "
                         "test, validation and pool examples images of their own")
      out[rows] = part[np.arange(len(rows)) % len(part)]
      start += len(part)
  if (out < 0).any():
    raise ValueError("av_digits: the splits do not cover every example")
  return out


def split_images(columns: dict[str, np.ndarray], splits: dict[str, np.ndarray]
                 ) -> dict[str, np.ndarray]:
  """``columns`` with ``image``: each example's 8x8 digit image, ``[N, 8, 8, 1]``, paired
  per split (``split_image_indices``)."""
  images, _ = _digits()
  index = split_image_indices(np.asarray(columns["label"]), splits)
  return dict(columns, image=images[index][..., None], image_index=index)


def build_columns(manual_dir: str) -> dict[str, np.ndarray]:
  """Every recording as columns: audio, label, _id, is_test (official split). The images
  are paired once the split is known (``split_images``)."""
  rows = list_recordings(manual_dir)
  if not rows:
    raise FileNotFoundError(f"av_digits: no recordings in {manual_dir!r}")
  labels = np.asarray([r[1] for r in rows], np.int32)
  audio = np.stack([log_mel(read_wave(r[0])) for r in rows])
  return {"audio": audio, "label": labels, "_id": np.arange(len(rows), dtype=np.int64),
          "is_test": np.asarray([r[3] in OFFICIAL_TEST_INDICES for r in rows])}


@functools.cache
def builder_class():
  """The TFDS builder class, defined (and registered) on first call: importing this module
  does not import TFDS."""
  tfds = extras.require("tensorflow_datasets", "the av_digits TFDS builder "
                        "(data.source='tfds'; 'files' needs no TFDS)")

  class AvDigits(tfds.core.GeneratorBasedBuilder):
    """FSDD log-mel spectrograms paired with 8x8 digit images (one split, ``train``)."""

    VERSION = tfds.core.Version("2.0.0")
    RELEASE_NOTES = {
        "2.0.0": "Images no longer stored: they are paired per split when the data set is "
                 "loaded, so no image is in two splits (1.0.0 shared 223 test images with "
                 "the pool and validation).",
        "1.0.0": "FSDD log-mel (40x100) + scikit-learn 8x8 digits."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Put the Free Spoken Digit Dataset (https://github.com/Jakobovski/"
        "free-spoken-digit-dataset) in manual_dir: its recordings/ folder of "
        "{digit}_{speaker}_{index}.wav files.")

    def _info(self):
      return tfds.core.DatasetInfo(
          builder=self,
          description="Spoken digits (FSDD) paired with handwritten digit images.",
          features=tfds.features.FeaturesDict({
              "audio": tfds.features.Tensor(shape=AUDIO_SHAPE, dtype=np.float32),
              "label": tfds.features.ClassLabel(num_classes=NUM_CLASSES),
              "_id": tfds.features.Scalar(dtype=np.int64),
              "is_test": tfds.features.Scalar(dtype=np.bool_),
          }),
          homepage="https://github.com/Jakobovski/free-spoken-digit-dataset",
          license="CC BY-SA 4.0 (FSDD); CC BY 4.0 (digit images)")

    def _split_generators(self, dl_manager):
      return {"train": self._generate_examples(manual_dir_of(dl_manager))}

    def _generate_examples(self, manual_dir):
      columns = build_columns(manual_dir)
      for i in range(len(columns["label"])):
        example: dict[str, Any] = {k: v[i] for k, v in columns.items()}
        example["label"] = int(example["label"])
        example["_id"] = int(example["_id"])
        example["is_test"] = bool(example["is_test"])
        yield i, example

  return AvDigits



def recording_files(manual_dir: str, ids) -> dict[str, list[str]]:
  """Each record's wav file (``ids`` index ``list_recordings``), under ``manual_dir``."""
  rows = list_recordings(manual_dir)
  root = os.path.realpath(manual_dir)
  return {"recording": [os.path.relpath(os.path.realpath(rows[int(i)][0]), root)
                        for i in ids]}


INFO = DatasetInfo(
    name="av_digits", kind="arrays", modalities=MODALITIES,
    modality_specs=lambda data_cfg, names: modality_specs(names),
    builder_class=builder_class, check_manual_dir=recordings_dir,
    read_files=lambda data_cfg: build_columns(data_cfg.manual_dir),
    source_dir=recordings_dir, split_columns=split_images, source_files=recording_files)
