"""Decoding and augmentation of records, run by grain's workers (numpy + PIL + librosa only).

Every random choice comes from a ``numpy.random.Generator`` the pipeline seeds from (run
seed, epoch, record index), so a run's inputs are reproducible whatever the worker count.
The protocol follows the balanced multimodal AL reference code:

* **photos** (UPMC Food-101): train: resize the short side to 256, random 224 crop,
  horizontal flip (p 0.5), colour jitter (brightness/contrast/saturation 0.4, hue 0.1; p 0.8,
  random order), greyscale (p 0.2), Gaussian blur (kernel 21, sigma U(0.1, 2.0)); eval:
  resize 256, centre 224 crop; ImageNet mean/std. ``[H, W, 3]`` float32.
* **text**: WordPiece ids of the recipe words, ``[CLS] ... [SEP]``, padded to 100. ``[L]`` int32.
* **frames** (Kinetics-Sounds, VGGSound): train: 5 of the 10 frames drawn without replacement
  (kept in time order), resize to 128 x 171, one random 112 crop and flip per clip; eval:
  frames 1, 3, 5, 7, 9, centre crop; Kinetics mean/std. ``[5, 112, 112, 3]`` float32. (The
  reference draws a crop and flip per frame; one per clip keeps the clip coherent.)
* **audio**: int16 -> [-1, 1]; train: a random 5 s window starting in [0, 5 s]; eval: 2.5-7.5
  s; ``log(|STFT| + 1e-7)`` with n_fft 512, hop 159 (Hann, centred), standardised with the
  data set's mean/std. ``[257, 504, 1]`` float32.
"""

from __future__ import annotations

import dataclasses
import io
from typing import Any, Callable, Mapping

import numpy as np

from rlmba_jax import extras
from rlmba_jax.data.specs import ModalitySpec

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
KINETICS_MEAN, KINETICS_STD = (0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989)
# log-STFT statistics the reference code uses for each data set.
SPECTROGRAM_STATS = {"kinetics_sounds": (-3.0352, 3.0475), "vggsound": (-3.0093, 2.7911)}


def decode_rgb(data: bytes):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  with Image.open(io.BytesIO(data)) as im:
    return im.convert("RGB")


def _resize_short_side(image, size: int):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  w, h = image.size
  if w <= h:
    new = (size, max(1, int(size * h / w)))
  else:
    new = (max(1, int(size * w / h)), size)
  return image.resize(new, Image.BILINEAR)


def _crop(image, top: int, left: int, size: tuple[int, int]):
  return image.crop((left, top, left + size[1], top + size[0]))


def _random_offset(rng, full: tuple[int, int], size: tuple[int, int]) -> tuple[int, int]:
  h, w = full
  if h < size[0] or w < size[1]:
    raise ValueError(f"cannot crop {size} from an image of {full}")
  return int(rng.integers(0, h - size[0] + 1)), int(rng.integers(0, w - size[1] + 1))


def _centre_offset(full: tuple[int, int], size: tuple[int, int]) -> tuple[int, int]:
  return int(round((full[0] - size[0]) / 2)), int(round((full[1] - size[1]) / 2))


def _normalise(image, mean, std) -> np.ndarray:
  x = np.asarray(image, np.float32) / 255.0
  return (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)


def _colour_jitter(image, rng, strength: float = 0.5):
  from PIL import ImageEnhance  # pylint: disable=g-import-not-at-top
  b = c = s = 0.8 * strength
  hue = 0.2 * strength

  def hue_shift(im):
    shift = rng.uniform(-hue, hue)
    hsv = np.asarray(im.convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + int(round(shift * 255))) % 256
    from PIL import Image  # pylint: disable=g-import-not-at-top
    return Image.fromarray(hsv, "HSV").convert("RGB")

  ops = [lambda im: ImageEnhance.Brightness(im).enhance(rng.uniform(1 - b, 1 + b)),
         lambda im: ImageEnhance.Contrast(im).enhance(rng.uniform(1 - c, 1 + c)),
         lambda im: ImageEnhance.Color(im).enhance(rng.uniform(1 - s, 1 + s)),
         hue_shift]
  for i in rng.permutation(len(ops)):
    image = ops[i](image)
  return image


@dataclasses.dataclass(frozen=True)
class PhotoTransform:
  """jpeg bytes -> ``[size, size, 3]`` (Food-101 protocol; ``resize``/``size`` 256/224)."""
  resize: int = 256
  size: int = 224

  def __call__(self, data: bytes, rng: np.random.Generator | None) -> np.ndarray:
    from PIL import ImageFilter, ImageOps  # pylint: disable=g-import-not-at-top
    image = _resize_short_side(decode_rgb(data), self.resize)
    full = (image.size[1], image.size[0])
    crop = (self.size, self.size)
    if rng is None:
      return _normalise(_crop(image, *_centre_offset(full, crop), crop), IMAGENET_MEAN,
                        IMAGENET_STD)
    image = _crop(image, *_random_offset(rng, full, crop), crop)
    if rng.random() < 0.5:
      image = ImageOps.mirror(image)
    if rng.random() < 0.8:
      image = _colour_jitter(image, rng)
    if rng.random() < 0.2:
      image = ImageOps.grayscale(image).convert("RGB")
    image = image.filter(ImageFilter.GaussianBlur(radius=rng.uniform(0.1, 2.0)))
    return _normalise(image, IMAGENET_MEAN, IMAGENET_STD)


@dataclasses.dataclass(frozen=True)
class FramesTransform:
  """10 jpeg frames -> ``[num_frames, size, size, 3]`` (Kinetics-Sounds / VGGSound)."""
  num_frames: int = 5
  resize: tuple[int, int] = (128, 171)
  size: int = 112

  def __call__(self, frames, rng: np.random.Generator | None) -> np.ndarray:
    from PIL import Image, ImageOps  # pylint: disable=g-import-not-at-top
    total = len(frames)
    if rng is None:
      chosen = list(range(1, total, 2))[:self.num_frames]
    else:
      chosen = sorted(rng.choice(total, size=self.num_frames, replace=False).tolist())
    crop = (self.size, self.size)
    offset = (_centre_offset(self.resize, crop) if rng is None
              else _random_offset(rng, self.resize, crop))
    flip = rng is not None and rng.random() < 0.5
    out = []
    for i in chosen:
      image = decode_rgb(frames[i]).resize((self.resize[1], self.resize[0]), Image.BILINEAR)
      image = _crop(image, *offset, crop)
      if flip:
        image = ImageOps.mirror(image)
      out.append(_normalise(image, KINETICS_MEAN, KINETICS_STD))
    return np.stack(out)


@dataclasses.dataclass(frozen=True)
class SpectrogramTransform:
  """int16 ``[160000]`` at 16 kHz -> standardised log-STFT ``[257, frames, 1]``."""
  mean: float
  std: float
  sample_rate: int = 16000
  window_seconds: float = 5.0
  n_fft: int = 512
  hop_length: int = 159
  eval_start_seconds: float = 2.5  # the evaluation window's start (the 10 s clip's middle)

  def __call__(self, audio: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
    librosa = extras.require("librosa", "the audio spectrogram")
    wave = np.asarray(audio, np.float32) / 32768.0
    n = int(self.sample_rate * self.window_seconds)
    if rng is None:
      start = int(self.sample_rate * self.eval_start_seconds)
    else:
      start = int(rng.integers(0, max(len(wave) - n, 0) + 1))
    wave = wave[start:start + n]
    if len(wave) < n:
      wave = np.pad(wave, (0, n - len(wave)))
    wave = np.clip(wave, -1.0, 1.0)
    spec = librosa.stft(wave, n_fft=self.n_fft, hop_length=self.hop_length)
    spec = np.log(np.abs(spec) + 1e-7)
    return ((spec - self.mean) / self.std).astype(np.float32)[..., None]


@dataclasses.dataclass(frozen=True)
class TextTransform:
  """Space-joined words -> ``[max_length]`` int32 WordPiece ids (0 = padding)."""
  vocab_path: str
  max_length: int = 100

  def __call__(self, value, rng: np.random.Generator | None) -> np.ndarray:
    del rng
    tokenizer = tokenizer_for(self.vocab_path)
    if isinstance(value, bytes):
      value = value.decode("utf-8")
    return tokenizer.encode(str(value), self.max_length)


_TOKENIZERS: dict[str, Any] = {}


def tokenizer_for(path: str):
  """The WordPiece tokenizer of ``path``, read once per process."""
  if path not in _TOKENIZERS:
    from rlmba_jax.data.text import WordPieceTokenizer  # pylint: disable=g-import-not-at-top
    _TOKENIZERS[path] = WordPieceTokenizer(path)
  return _TOKENIZERS[path]


@dataclasses.dataclass(frozen=True)
class RecordTransform:
  """A record (dict) -> model inputs: ``{modality: array, "label": int}``.

  ``columns`` maps each modality to ``(record column, per-modality transform)``. ``seed`` is
  None for evaluation (deterministic: centre crops, fixed frames and audio window).
  """
  columns: Mapping[str, tuple[str, Callable]]

  def __call__(self, record: Mapping[str, Any], rng: np.random.Generator | None
               ) -> dict[str, np.ndarray]:
    out = {m: fn(record[col], rng) for m, (col, fn) in self.columns.items()}
    out["label"] = np.int32(record["label"])
    return out


def record_modality_specs(data_cfg, names: tuple[str, ...]) -> tuple[ModalitySpec, ...]:
  """The shapes the record transforms make from ``config.data``, for the modalities named:
  photos (S, S, 3), token ids (L,), clips (T, S, S, 3), log-STFT (257, frames, 1)."""
  shapes = {
      "image": ModalitySpec("image", (data_cfg.image_size, data_cfg.image_size, 3), "image"),
      "text": ModalitySpec("text", (data_cfg.text_length,), "tokens"),
      "video": ModalitySpec("video", (data_cfg.num_frames, data_cfg.frame_size,
                                      data_cfg.frame_size, 3), "clip"),
      # librosa's centred STFT: n_fft // 2 + 1 bins, 1 + samples // hop frames.
      "audio": ModalitySpec("audio", (257, 1 + int(16000 * data_cfg.audio_seconds) // 159, 1),
                            "image", "lower"),
  }
  return tuple(shapes[n] for n in names)
