"""av_digits: spoken digits (Free Spoken Digit Dataset) paired with 8x8 digit images.

A small real audio-visual data set that runs on a CPU. Each of FSDD's 3,000 recordings
(``{digit}_{speaker}_{index}.wav``, 8 kHz mono, 6 speakers x 10 digits x 50; CC BY-SA 4.0,
Z. Jackson et al.) is paired with a scikit-learn 8x8 handwritten-digit image of the same class
(1,797 images, from the UCI optical digits data, CC BY 4.0): within each class, recording k
takes image ``perm[k mod n_c]`` of a permutation seeded by ``PAIRING_SEED``.

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
  return tuple(ModalitySpec(n, shapes[n], "image") for n in names)


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


def paired_images(labels: np.ndarray, seed: int = PAIRING_SEED) -> np.ndarray:
  """For each label, an 8x8 image of that digit (scikit-learn's digits). ``[N, 8, 8, 1]``."""
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  digits = load_digits()
  rng = np.random.default_rng(seed)
  by_class = {c: rng.permutation(np.flatnonzero(digits.target == c)) for c in range(10)}
  seen = {c: 0 for c in range(10)}
  out = np.empty((len(labels),) + IMAGE_SHAPE, np.float32)
  for i, c in enumerate(labels):
    pool = by_class[int(c)]
    out[i, ..., 0] = digits.images[pool[seen[int(c)] % len(pool)]]
    seen[int(c)] += 1
  return out


def build_columns(manual_dir: str) -> dict[str, np.ndarray]:
  """Every example as columns: audio, image, label, _id, is_test (official split)."""
  rows = list_recordings(manual_dir)
  if not rows:
    raise FileNotFoundError(f"av_digits: no recordings in {manual_dir!r}")
  labels = np.asarray([r[1] for r in rows], np.int32)
  audio = np.stack([log_mel(read_wave(r[0])) for r in rows])
  return {"audio": audio, "image": paired_images(labels), "label": labels,
          "_id": np.arange(len(rows), dtype=np.int64),
          "is_test": np.asarray([r[3] in OFFICIAL_TEST_INDICES for r in rows])}


@functools.cache
def builder_class():
  """The TFDS builder class, defined (and registered) on first call: importing this module
  does not import TFDS."""
  tfds = extras.require("tensorflow_datasets", "the av_digits TFDS builder "
                        "(data.source='tfds'; 'files' needs no TFDS)")

  class AvDigits(tfds.core.GeneratorBasedBuilder):
    """FSDD log-mel spectrograms paired with 8x8 digit images (one split, ``train``)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "FSDD log-mel (40x100) + scikit-learn 8x8 digits."}
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
              "image": tfds.features.Tensor(shape=IMAGE_SHAPE, dtype=np.float32),
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



INFO = DatasetInfo(
    name="av_digits", kind="arrays", modalities=MODALITIES,
    modality_specs=lambda data_cfg, names: modality_specs(names),
    builder_class=builder_class, check_manual_dir=recordings_dir,
    read_files=lambda data_cfg: build_columns(data_cfg.manual_dir),
    source_dir=recordings_dir)
