"""kinetics_sounds and vggsound: 10 frames + a 16 kHz wav per clip, as the reference code
extracts them (``launch/extract_av.py`` does it here from the raw videos).

Layouts in ``manual_dir`` (those of the balanced multimodal AL code)::

  kinetics_sounds:  {train,test}/audio/{class}/{clip}.wav
                    {train,test}/video/{class}/{clip}/frame_{0..9}.jpg
                    optional my_train.txt / my_test.txt: the Kinetics-Sounds clip lists
                    (CSV, YouTube id = first 11 characters of the first column)
  vggsound:         audio/{train,test}/{class}/{clip}.wav
                    frames/{train,test}/{class}/{clip}/frame_{0..9}.jpg
                    optional vggsound.csv: YouTube id, start second, class, split

Records: ``frames`` (10 jpeg byte strings, frame order), ``audio`` (int16 PCM at 16 kHz,
exactly 10 s: longer clips are cut, shorter ones zero-padded, as the reference does before
cropping), ``label`` (sorted class folder names), ``_id``, ``is_test``, ``name``
(``{class}/{clip}``). Clips missing from a present clip list, a clip without its wav (no
audio track), fewer than 10 frames, an undecodable jpeg or wav stop the build naming the
file, or with ``data.on_error=skip`` are skipped and counted. Another sample rate is
resampled to 16 kHz (librosa), multi-channel audio averaged to mono.
"""

from __future__ import annotations

import csv
import functools
import os
from typing import Iterator

import numpy as np

from rlmba_jax import extras
from rlmba_jax.data import fixtures
from rlmba_jax.data.builders import BuildReport, read_checked_image, record_builder_base
from rlmba_jax.data.specs import DatasetInfo
from rlmba_jax.data.transforms import record_modality_specs

SAMPLE_RATE = 16000
CLIP_SECONDS = 10
NUM_FRAMES = 10
MODALITIES = ("video", "audio")


def _folders(name: str, manual_dir: str, split: str) -> tuple[str, str]:
  if name == "kinetics_sounds":
    return (os.path.join(manual_dir, split, "audio"), os.path.join(manual_dir, split, "video"))
  return (os.path.join(manual_dir, "audio", split), os.path.join(manual_dir, "frames", split))


def check_manual_dir(name: str, manual_dir: str) -> str:
  if not manual_dir:
    raise FileNotFoundError(
        f"{name} reads extracted frames and wavs from data.manual_dir; set "
        f"--config.data.manual_dir (launch/extract_av.py makes that folder from the videos)")
  for split in ("train", "test"):
    for folder in _folders(name, manual_dir, split):
      if not os.path.isdir(folder):
        layout = ("{train,test}/{audio,video}/{class}/" if name == "kinetics_sounds"
                  else "{audio,frames}/{train,test}/{class}/")
        raise FileNotFoundError(f"{name}: {folder!r} does not exist; data.manual_dir must "
                                f"follow the layout {layout}")
  return manual_dir


def class_names(name: str, manual_dir: str) -> list[str]:
  names = set()
  for split in ("train", "test"):
    for folder in _folders(name, manual_dir, split):
      names.update(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
  if not names:
    raise FileNotFoundError(f"{name}: no class folders under {manual_dir!r}")
  return sorted(names)


def clip_list(name: str, manual_dir: str, split: str) -> set[str] | None:
  """YouTube ids of the official list for ``split``, or None when no list is present."""
  if name == "kinetics_sounds":
    path = os.path.join(manual_dir, f"my_{split}.txt")
    if not os.path.exists(path):
      return None
    with open(path, newline="") as f:
      return {row[0].strip()[:11] for row in csv.reader(f) if row and row[0].strip()}
  path = os.path.join(manual_dir, "vggsound.csv")
  if not os.path.exists(path):
    return None
  with open(path, newline="") as f:
    return {row[0].strip() for row in csv.reader(f) if len(row) >= 4 and
            row[3].strip() == split}


def read_wave_16k(path: str) -> np.ndarray:
  """``[160000]`` int16: the wav at 16 kHz mono, cut or zero-padded to 10 s."""
  soundfile = extras.require("soundfile", "reading wav files")
  try:
    wave, rate = soundfile.read(path, dtype="float32", always_2d=True)
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f"cannot decode the wav ({e})") from e
  wave = wave.mean(axis=1)
  if wave.size == 0:
    raise ValueError("the wav has no samples")
  if not np.isfinite(wave).all():
    raise ValueError("the wav holds non-finite samples")
  if rate != SAMPLE_RATE:
    librosa = extras.require("librosa", "resampling audio")
    wave = librosa.resample(wave, orig_sr=rate, target_sr=SAMPLE_RATE)
  n = SAMPLE_RATE * CLIP_SECONDS
  wave = wave[:n] if len(wave) >= n else np.pad(wave, (0, n - len(wave)))
  return np.round(np.clip(wave, -1.0, 32767 / 32768) * 32768).astype(np.int16)


def iter_examples(name: str, manual_dir: str, report: BuildReport) -> Iterator[dict]:
  check_manual_dir(name, manual_dir)
  names = class_names(name, manual_dir)
  index = {n: i for i, n in enumerate(names)}
  next_id = 0
  for split in ("train", "test"):
    listed = clip_list(name, manual_dir, split)
    audio_root, frames_root = _folders(name, manual_dir, split)
    for label in sorted(os.listdir(frames_root)):
      if not os.path.isdir(os.path.join(frames_root, label)):
        continue
      for clip in sorted(os.listdir(os.path.join(frames_root, label))):
        clip_dir = os.path.join(frames_root, label, clip)
        if not os.path.isdir(clip_dir):
          continue
        if listed is not None and clip[:11] not in listed and clip not in listed:
          report.problem(f"clip not in the official {split} list", clip_dir)
          continue
        wav = os.path.join(audio_root, label, clip + ".wav")
        if not os.path.exists(wav):
          report.problem("clip without audio (no wav)", clip_dir, f"no {wav}")
          continue
        frame_files = [os.path.join(clip_dir, f"frame_{i}.jpg") for i in range(NUM_FRAMES)]
        absent = [f for f in frame_files if not os.path.exists(f)]
        if absent:
          report.problem(f"clip with fewer than {NUM_FRAMES} frames", clip_dir,
                         f"missing {os.path.basename(absent[0])}")
          continue
        frames = _read_frames(frame_files, report)
        if frames is None:
          continue
        try:
          audio = read_wave_16k(wav)
        except ValueError as e:
          report.problem("corrupt audio", wav, str(e))
          continue
        report.kept += 1
        yield {"frames": frames, "audio": audio, "label": index[label], "_id": next_id,
               "is_test": split == "test", "name": f"{label}/{clip}"}
        next_id += 1
  _report_audio_without_frames(name, manual_dir, report)


def _read_frames(frame_files: list[str], report: BuildReport) -> list[bytes] | None:
  """A clip's frames as bytes, or None (reported) at the first that is not an image."""
  frames = []
  for f in frame_files:
    data = read_checked_image(f, report, "corrupt frame")
    if data is None:
      return None
    frames.append(data)
  return frames


def _report_audio_without_frames(name: str, manual_dir: str, report: BuildReport) -> None:
  """Wavs with no frames folder are clips without video: counted, never silently dropped."""
  for split in ("train", "test"):
    audio_root, frames_root = _folders(name, manual_dir, split)
    for label in sorted(os.listdir(audio_root)):
      folder = os.path.join(audio_root, label)
      if not os.path.isdir(folder):
        continue
      for file in sorted(os.listdir(folder)):
        if file.endswith(".wav") and not os.path.isdir(
            os.path.join(frames_root, label, file[:-4])):
          report.problem("audio without frames", os.path.join(folder, file))


@functools.cache
def _make_builder_classes() -> dict[str, type]:
  tfds = extras.require("tensorflow_datasets", "the Kinetics-Sounds and VGGSound TFDS builders")

  class _AvClips(record_builder_base(), skip_registration=True):
    DATASET = ""
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "10 jpeg frames + 10 s of 16 kHz int16 audio per clip."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Extract 10 frames and a 16 kHz wav per clip (launch/extract_av.py) into manual_dir.")

    def class_names(self, manual_dir):
      return class_names(self.DATASET, check_manual_dir(self.DATASET, manual_dir))

    def examples(self, manual_dir, report):
      return iter_examples(self.DATASET, manual_dir, report)

    def _info(self):
      return tfds.core.DatasetInfo(
          builder=self,
          description=f"{self.DATASET}: video frames and audio of labelled clips.",
          features=tfds.features.FeaturesDict({
              "frames": tfds.features.Tensor(shape=(NUM_FRAMES,), dtype=np.object_),
              "audio": tfds.features.Tensor(shape=(SAMPLE_RATE * CLIP_SECONDS,),
                                            dtype=np.int16),
              "label": tfds.features.Scalar(dtype=np.int64),
              "_id": tfds.features.Scalar(dtype=np.int64),
              "is_test": tfds.features.Scalar(dtype=np.bool_),
              "name": tfds.features.Text(),
          }),
          metadata=tfds.core.MetadataDict(), disable_shuffling=True)

  class KineticsSounds(_AvClips):
    """Kinetics-Sounds clips (31 classes): frames + audio."""
    DATASET = "kinetics_sounds"

  class Vggsound(_AvClips):
    """VGGSound clips (309 classes): frames + audio."""
    DATASET = "vggsound"

  return {"kinetics_sounds": KineticsSounds, "vggsound": Vggsound}


def _info(name: str) -> DatasetInfo:
  return DatasetInfo(
      name=name, kind="records", modalities=MODALITIES,
      modality_specs=record_modality_specs,
      builder_class=lambda: _make_builder_classes()[name],
      check_manual_dir=functools.partial(check_manual_dir, name),
      write_fixture=functools.partial(fixtures.write_av_clips, dataset=name))


KINETICS_SOUNDS = _info("kinetics_sounds")
VGGSOUND = _info("vggsound")
