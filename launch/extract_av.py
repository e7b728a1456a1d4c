r"""Extracts 10 frames and a 16 kHz mono wav per video into the Kinetics-Sounds / VGGSound
layouts that the ``kinetics_sounds`` / ``vggsound`` builders read (PyAV; no ffmpeg binary).

  # videos arranged {split}/{class}/{clip}.mp4 (e.g. a Kinetics-400 download):
  python launch/extract_av.py --layout=kinetics_sounds --videos=/data/k400/videos \
      --out=/data/kinetics_sounds --clip_list_dir=/data/k400   # my_{split}.txt, optional
  # VGGSound: a flat folder of {youtube_id}_{start:06d}.mp4 plus the official vggsound.csv:
  python launch/extract_av.py --layout=vggsound --videos=/data/vggsound/video \
      --csv=/data/vggsound/vggsound.csv --out=/data/vggsound

Frames: 10 frames evenly spaced over the clip (frame indices floor(i * n / 10), i = 0..9; the
reference takes every (n // 10)-th frame, the same frames when n is a multiple of 10), saved
as ``frame_{i}.jpg`` (quality 95). Audio: every audio frame resampled to 16 kHz mono 16-bit
PCM. A clip is written to a temporary folder and renamed when complete, so an interrupted
extraction leaves no partial clip; re-running skips clips already extracted. A video that
cannot be decoded, has no video stream, has no audio track or has fewer than 10 frames is
reported by name and skipped (``--on_error=stop`` stops at the first one instead); the
counts are printed at the end.
"""

from __future__ import annotations

import os
import shutil
import sys

from absl import app, flags

from rlmba_jax.data.extraction import ExtractionError, extract, plan_jobs

FLAGS = flags.FLAGS
flags.DEFINE_enum("layout", "kinetics_sounds", ["kinetics_sounds", "vggsound"],
                  "output layout (and how --videos is organised)")
flags.DEFINE_string("videos", None, "folder of raw videos")
flags.DEFINE_string("out", None, "output folder (the builder's manual_dir)")
flags.DEFINE_string("csv", "", "vggsound: the official vggsound.csv (id, start, class, split)")
flags.DEFINE_string("clip_list_dir", "", "kinetics_sounds: folder with my_train.txt / "
                    "my_test.txt; only listed clips are extracted, and the lists are copied")
flags.DEFINE_integer("workers", 4, "parallel extraction processes")
flags.DEFINE_enum("on_error", "skip", ["skip", "stop"], "a bad video: skip it or stop")
flags.DEFINE_integer("jpeg_quality", 95, "JPEG quality of the frames")


def main(argv):
  del argv
  if not FLAGS.videos or not FLAGS.out:
    raise app.UsageError("--videos and --out are required")
  jobs = plan_jobs(FLAGS.layout, FLAGS.videos, FLAGS.out, csv_path=FLAGS.csv,
                   clip_list_dir=FLAGS.clip_list_dir, quality=FLAGS.jpeg_quality)
  os.makedirs(FLAGS.out, exist_ok=True)
  if FLAGS.layout == "kinetics_sounds" and FLAGS.clip_list_dir:
    for split in ("train", "test"):
      shutil.copy(os.path.join(FLAGS.clip_list_dir, f"my_{split}.txt"), FLAGS.out)
  if FLAGS.layout == "vggsound":
    shutil.copy(FLAGS.csv, os.path.join(FLAGS.out, "vggsound.csv"))
  try:
    counts = extract(jobs, workers=FLAGS.workers, on_error=FLAGS.on_error)
  except ExtractionError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)
  print(f"{len(jobs)} videos: extracted {counts['ok']}, already there {counts['exists']}, "
        f"skipped {counts['error']} -> {FLAGS.out}")


if __name__ == "__main__":
  app.run(main)
