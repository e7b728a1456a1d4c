"""Frames and audio out of raw videos, into the layouts of the ``kinetics_sounds`` and
``vggsound`` builders (PyAV; no ffmpeg binary). The command line is ``launch/extract_av.py``.

Frames: 10 frames evenly spaced over the clip (frame indices floor(i * n / 10), i = 0..9; the
reference takes every (n // 10)-th frame, the same frames when n is a multiple of 10), saved
as ``frame_{i}.jpg``. Audio: every audio frame resampled to 16 kHz mono 16-bit PCM. A clip
is written to a temporary folder and renamed when complete, so an interrupted extraction
leaves no partial clip; re-running skips clips already extracted. A video that cannot be
decoded, has no video stream, no audio track or fewer than 10 frames is reported by name.
"""

from __future__ import annotations

import concurrent.futures
import csv
import multiprocessing
import os
import shutil
import sys
from typing import Iterable

import numpy as np

from rlmba_jax import extras

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov")
NUM_FRAMES, SAMPLE_RATE = 10, 16000


class ExtractionError(ValueError):
  pass


def read_clip(path: str) -> tuple[list[np.ndarray], np.ndarray]:
  """``(10 RGB frames [H, W, 3] uint8, [samples] int16 at 16 kHz mono)`` of one video."""
  av = extras.require("av", "extracting frames and audio from videos")
  try:
    container = av.open(path)
  except Exception as e:  # pylint: disable=broad-except  (PyAV/FFmpeg errors vary)
    raise ExtractionError(f"cannot open {path!r} ({type(e).__name__}: {e})") from e
  with container:
    if not container.streams.video:
      raise ExtractionError(f"{path!r} has no video stream")
    if not container.streams.audio:
      raise ExtractionError(f"{path!r} has no audio track")
    try:
      frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    except Exception as e:  # pylint: disable=broad-except
      raise ExtractionError(f"cannot decode the video of {path!r} ({e})") from e
  if len(frames) < NUM_FRAMES:
    raise ExtractionError(f"{path!r} has {len(frames)} frames; {NUM_FRAMES} are needed")
  chosen = [frames[(i * len(frames)) // NUM_FRAMES] for i in range(NUM_FRAMES)]
  with av.open(path) as container:
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    chunks = []
    try:
      for frame in container.decode(audio=0):
        for out in resampler.resample(frame):
          chunks.append(out.to_ndarray().reshape(-1))
      for out in resampler.resample(None):  # flush
        chunks.append(out.to_ndarray().reshape(-1))
    except Exception as e:  # pylint: disable=broad-except
      raise ExtractionError(f"cannot decode the audio of {path!r} ({e})") from e
  if not chunks or sum(len(c) for c in chunks) == 0:
    raise ExtractionError(f"{path!r} has an empty audio track")
  return chosen, np.concatenate(chunks).astype(np.int16)


def destinations(layout: str, out: str, split: str, label: str, clip: str) -> tuple[str, str]:
  """``(frames folder, wav path)`` of a clip in the builder's layout."""
  if layout == "kinetics_sounds":
    return (os.path.join(out, split, "video", label, clip),
            os.path.join(out, split, "audio", label, clip + ".wav"))
  return (os.path.join(out, "frames", split, label, clip),
          os.path.join(out, "audio", split, label, clip + ".wav"))


def extract_one(job: tuple[str, str, str, str, str, str, int]) -> tuple[str, str]:
  """Extracts one video; returns ``(status, message)`` with status ok / exists / error."""
  path, layout, out, split, label, clip, quality = job
  frames_dir, wav_path = destinations(layout, out, split, label, clip)
  if os.path.isdir(frames_dir) and os.path.exists(wav_path):
    return "exists", path
  try:
    frames, audio = read_clip(path)
  except ExtractionError as e:
    return "error", str(e)
  from PIL import Image  # pylint: disable=g-import-not-at-top
  soundfile = extras.require("soundfile", "writing the extracted audio")
  tmp_frames = frames_dir + ".partial"
  shutil.rmtree(tmp_frames, ignore_errors=True)
  os.makedirs(tmp_frames)
  for i, frame in enumerate(frames):
    Image.fromarray(frame).save(os.path.join(tmp_frames, f"frame_{i}.jpg"), "JPEG",
                                quality=quality)
  os.makedirs(os.path.dirname(wav_path), exist_ok=True)
  tmp_wav = wav_path + ".partial.wav"
  soundfile.write(tmp_wav, audio, SAMPLE_RATE, subtype="PCM_16")
  shutil.rmtree(frames_dir, ignore_errors=True)
  os.replace(tmp_frames, frames_dir)
  os.replace(tmp_wav, wav_path)  # the wav last: a clip with its wav is complete
  return "ok", path


def _videos_in(folder: str) -> list[str]:
  return sorted(f for f in os.listdir(folder) if f.lower().endswith(VIDEO_EXTENSIONS))


def _read_list(path: str) -> set[str]:
  with open(path, newline="") as f:
    return {row[0].strip()[:11] for row in csv.reader(f) if row and row[0].strip()}


def plan_jobs(layout: str, videos: str, out: str, *, csv_path: str = "",
              clip_list_dir: str = "", quality: int = 95) -> list[tuple]:
  """The (video, destination) jobs for a folder of raw videos."""
  if not os.path.isdir(videos):
    raise FileNotFoundError(f"--videos={videos!r} is not a folder")
  jobs = []
  if layout == "vggsound":
    if not csv_path or not os.path.exists(csv_path):
      raise FileNotFoundError("vggsound needs --csv=vggsound.csv (YouTube id, start second, "
                              "class, split) to place each video")
    rows = {}
    with open(csv_path, newline="") as f:
      for row in csv.reader(f):
        if len(row) >= 4:
          rows[(row[0].strip(), int(float(row[1])))] = (row[2].strip(), row[3].strip())
    for file in _videos_in(videos):
      clip = os.path.splitext(file)[0]
      youtube_id, _, start = clip.rpartition("_")
      try:
        key = (youtube_id, int(start))
      except ValueError:
        key = None
      if key not in rows:
        print(f"not in {csv_path}: {file}", file=sys.stderr)
        continue
      label, split = rows[key]
      jobs.append((os.path.join(videos, file), layout, out, split, label, clip, quality))
    return jobs
  lists = {}
  for split in ("train", "test"):
    if clip_list_dir:
      path = os.path.join(clip_list_dir, f"my_{split}.txt")
      if not os.path.exists(path):
        raise FileNotFoundError(f"--clip_list_dir has no {path!r}")
      lists[split] = _read_list(path)
  for split in ("train", "test"):
    root = os.path.join(videos, split)
    if not os.path.isdir(root):
      raise FileNotFoundError(f"{root!r} does not exist; --videos must hold "
                              "{train,test}/{class}/*.mp4")
    for label in sorted(os.listdir(root)):
      if not os.path.isdir(os.path.join(root, label)):
        continue
      for file in _videos_in(os.path.join(root, label)):
        clip = os.path.splitext(file)[0]
        if split in lists and clip[:11] not in lists[split]:
          continue
        jobs.append((os.path.join(root, label, file), layout, out, split, label, clip,
                     quality))
  return jobs


def extract(jobs: Iterable[tuple], *, workers: int = 4, on_error: str = "skip"
            ) -> dict[str, int]:
  """Runs the jobs; returns counts by status. ``on_error='stop'`` raises at the first bad
  video (clips already written stay)."""
  counts = {"ok": 0, "exists": 0, "error": 0}
  jobs = list(jobs)
  if workers <= 1:
    results = map(extract_one, jobs)
  else:
    # Worker processes are started fresh ("spawn"), never forked: a fork of a process that
    # has threads (JAX's, or FFmpeg's decoder threads after an in-process decode) can copy
    # a lock some thread held, and the child then waits on it forever; the test suite hung
    # that way in CI.
    pool = concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"))
    results = pool.map(extract_one, jobs, chunksize=4)
  try:
    for status, message in results:
      counts[status] += 1
      if status == "error":
        if on_error == "stop":
          raise ExtractionError(message + " (--on_error=skip continues without it)")
        print(f"skipped: {message}", file=sys.stderr)
  finally:
    if workers > 1:
      pool.shutdown(cancel_futures=True)
  return counts
