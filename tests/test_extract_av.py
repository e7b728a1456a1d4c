"""launch/extract_av.py (rlmba_jax.data.extraction): raw videos (made here with PyAV) -> the builders' layouts -> records."""

import os

import numpy as np
import pytest

from rlmba_jax.data import load_dataset
from rlmba_jax.paper_configs import paper_config

from rlmba_jax.data import extraction as extract_av
from conftest import run_python


def write_video(path, *, seconds=2.0, fps=15, pitch=440.0, audio=True, size=(48, 64),
                shade=0):
  """An mp4 (H.264) whose frame i has brightness ~ shade + 4 i, with an AAC sine track."""
  import av
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with av.open(path, "w") as out:
    video = out.add_stream("libx264", rate=fps)
    video.width, video.height, video.pix_fmt = size[1], size[0], "yuv420p"
    if audio:
      sound = out.add_stream("aac", rate=44100)
      sound.layout = "stereo"
    for i in range(int(seconds * fps)):
      frame = np.full(size + (3,), min(shade + 4 * i, 255), np.uint8)
      for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
        out.mux(packet)
    for packet in video.encode():
      out.mux(packet)
    if audio:
      t = np.arange(int(seconds * 44100)) / 44100
      wave = (0.3 * np.sin(2 * np.pi * pitch * t) * 32767).astype(np.int16)
      for start in range(0, len(wave), 1024):
        chunk = np.stack([wave[start:start + 1024]] * 2, axis=1).reshape(1, -1)  # interleaved
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="s16",
                                           layout="stereo")
        frame.sample_rate = 44100
        for packet in sound.encode(frame):
          out.mux(packet)
      for packet in sound.encode():
        out.mux(packet)


def test_extract_kinetics_layout_then_build(tmp_path):
  videos = tmp_path / "videos"
  for split, count in (("train", 3), ("test", 1)):
    for c, (label, pitch) in enumerate((("playing drums", 330.0), ("tap dancing", 660.0))):
      for k in range(count):
        write_video(str(videos / split / label / f"{split[:2]}{c}{k:08d}_000001_000011.mp4"),
                    pitch=pitch, shade=40 * c)
  write_video(str(videos / "train" / "tap dancing" / "silentclip1_000001_000011.mp4"),
              audio=False)
  (videos / "train" / "tap dancing" / "brokenclip1_000001_000011.mp4").write_bytes(
      b"\x00\x00\x00\x18ftypmp42 not really a video")
  out = tmp_path / "kinetics_sounds"
  jobs = extract_av.plan_jobs("kinetics_sounds", str(videos), str(out))
  assert len(jobs) == 10
  with pytest.raises(extract_av.ExtractionError, match="brokenclip1|silentclip1"):
    extract_av.extract(jobs, workers=1, on_error="stop")
  counts = extract_av.extract(jobs, workers=2, on_error="skip")
  assert counts["error"] == 2 and counts["ok"] + counts["exists"] == 8
  again = extract_av.extract(jobs, workers=1, on_error="skip")
  assert again == {"ok": 0, "exists": 8, "error": 2}  # resumable: nothing redone
  clip = out / "train" / "video" / "playing drums" / "tr000000000_000001_000011"
  frames = sorted(os.listdir(clip))
  assert frames == [f"frame_{i}.jpg" for i in range(10)]
  from PIL import Image
  brightness = [np.asarray(Image.open(clip / f)).mean() for f in frames]
  assert np.all(np.diff(brightness) > 0)  # evenly spaced over the clip, in order
  import soundfile
  wave, rate = soundfile.read(str(out / "train" / "audio" / "playing drums" /
                                  "tr000000000_000001_000011.wav"))
  assert rate == 16000 and wave.ndim == 1 and abs(len(wave) - 32000) < 2048
  spectrum = np.abs(np.fft.rfft(wave[4000:20000]))
  assert abs(np.argmax(spectrum) - 330) < 3  # 1 Hz bins: the 330 Hz tone survives
  assert not any(p.name.endswith(".partial") for p in out.rglob("*"))
  c = paper_config("kinetics_sounds", "runlocal")
  c.data.fixture, c.data.manual_dir = False, str(out)
  c.data.data_dir, c.data.val_size = str(tmp_path / "tfds"), 2
  data = load_dataset(c.data)
  assert data.build_report == {"kept": 8}
  assert data.class_names == ("playing drums", "tap dancing")
  assert len(data.test) == 2 and len(data.pool) == 4


def test_vggsound_needs_its_csv(tmp_path):
  videos = tmp_path / "flat"
  write_video(str(videos / "abcdefghijk_000030.mp4"), seconds=1.0)
  with pytest.raises(FileNotFoundError, match="vggsound.csv"):
    extract_av.plan_jobs("vggsound", str(videos), str(tmp_path / "out"))
  (tmp_path / "vggsound.csv").write_text("abcdefghijk,30,dog barking,test\n")
  jobs = extract_av.plan_jobs("vggsound", str(videos), str(tmp_path / "out"),
                              csv_path=str(tmp_path / "vggsound.csv"))
  assert extract_av.extract(jobs, workers=1) == {"ok": 1, "exists": 0, "error": 0}
  assert (tmp_path / "out" / "frames" / "test" / "dog barking" / "abcdefghijk_000030" /
          "frame_9.jpg").exists()
  assert (tmp_path / "out" / "audio" / "test" / "dog barking" /
          "abcdefghijk_000030.wav").exists()


@pytest.mark.slow
def test_command_line(tmp_path):
  write_video(str(tmp_path / "v" / "train" / "a" / "clip0000001.mp4"), seconds=1.0)
  write_video(str(tmp_path / "v" / "test" / "a" / "clip0000002.mp4"), seconds=1.0)
  result = run_python(
      "import sys; sys.argv = ['extract_av', '--videos=%s', '--out=%s', '--workers=1'];"
      "import runpy; runpy.run_path('launch/extract_av.py', run_name='__main__')"
      % (tmp_path / "v", tmp_path / "o"))
  assert result.returncode == 0, result.stderr
  assert "2 videos: extracted 2" in result.stdout
