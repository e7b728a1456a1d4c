"""The paper's data sets on fixtures written in their real layouts: builders, bad input,
input pipelines (augmentation determinism, grain workers, host sharding)."""

import os
import shutil
import sys

import numpy as np
import pytest

from rlmba_jax.data import fixtures, load_dataset, transforms
from rlmba_jax.data.builders import SourceFileError
from rlmba_jax.paper_configs import paper_config


CONFIG_OF = {"upmc_food101": "upmc_food101", "kinetics_sounds": "kinetics_sounds",
             "vggsound": "vggsound"}


def _data_cfg(name, tmp_path, manual_dir="", **extra):
  c = paper_config(name, "runlocal")
  c.data.data_dir = str(tmp_path / "tfds")
  if manual_dir:
    c.data.fixture = False
    c.data.manual_dir = str(manual_dir)
  for k, v in extra.items():
    setattr(c.data, k, v)
  return c.data


@pytest.mark.parametrize("name", ["upmc_food101", "kinetics_sounds", "vggsound"])
def test_builder_on_fixture(name, tmp_path):
  data = load_dataset(_data_cfg(name, tmp_path))
  total = 64 if name == "upmc_food101" else 33
  assert data.build_report == {"kept": total}
  assert len(data.pool) + len(data.val) + len(data.test) == total
  assert len(data.test) == (16 if name == "upmc_food101" else 9)  # the official test split
  assert data.class_names == (fixtures.FOOD_CLASSES if name == "upmc_food101"
                              else tuple(sorted(fixtures.CLIP_CLASSES[name])))
  # Records hold what the layout holds; labels agree with the class folders.
  record = data.pool.source[int(data.pool.rows[0])]
  assert record["name"].decode().split("/")[0] == data.class_names[int(record["label"])]
  row = int(data.pool.rows[0])
  eval_a = data.eval_transform(dict(data.pool.source[row]), None)
  eval_b = data.eval_transform(dict(data.pool.source[row]), None)
  train_a = data.train_transform(dict(data.pool.source[row]), np.random.default_rng(5))
  train_b = data.train_transform(dict(data.pool.source[row]), np.random.default_rng(5))
  for spec in data.modalities:
    assert eval_a[spec.name].shape == spec.shape, spec
    assert train_a[spec.name].shape == spec.shape, spec
    np.testing.assert_array_equal(eval_a[spec.name], eval_b[spec.name])
    np.testing.assert_array_equal(train_a[spec.name], train_b[spec.name])
    assert np.isfinite(train_a[spec.name]).all()
  assert "tensorflow" not in sys.modules


def test_food101_text_and_image_pipeline(tmp_path):
  data = load_dataset(_data_cfg("upmc_food101", tmp_path))
  record = dict(data.pool.source[int(data.pool.rows[0])])
  words = record["text"].decode().split()
  assert 0 < len(words) <= 100 and "ingredients" not in words  # the words after the marker
  ids = data.eval_transform(record, None)["text"]
  used = int((ids != 0).sum())
  assert ids[0] == 2 and ids[used - 1] == 3 and (ids[used:] == 0).all()  # [CLS] .. [SEP] pad
  assert used >= len(words) + 2  # words outside the vocabulary become several pieces
  image = data.eval_transform(record, None)["image"]
  # ImageNet-normalised: values span roughly [-2.2, 2.7].
  assert -2.5 < image.min() < image.max() < 3.0


def test_audio_and_frames_protocol():
  rng = np.random.default_rng(0)
  audio = (rng.standard_normal(160000) * 3000).astype(np.int16)
  spec = transforms.SpectrogramTransform(-3.0352, 3.0475)
  out = spec(audio, None)
  assert out.shape == (257, 504, 1)  # n_fft 512, hop 159, 5 s at 16 kHz
  import librosa
  window = audio[40000:120000].astype(np.float32) / 32768  # eval: 2.5 s to 7.5 s
  expected = (np.log(np.abs(librosa.stft(window, n_fft=512, hop_length=159)) + 1e-7)
              + 3.0352) / 3.0475
  np.testing.assert_allclose(out[..., 0], expected, rtol=1e-5, atol=1e-5)
  frames = [fixtures._jpeg(np.full((48, 64, 3), 20 * i)) for i in range(10)]  # pylint: disable=protected-access
  clip = transforms.FramesTransform(5, (40, 52), 32)(frames, None)
  # eval frames are 1, 3, 5, 7, 9 (brightness 20 i), in time order
  means = clip.mean(axis=(1, 2, 3))
  assert np.all(np.diff(means) > 0) and clip.shape == (5, 32, 32, 3)
  drawn = transforms.FramesTransform(5, (40, 52), 32)(frames, np.random.default_rng(1))
  assert np.all(np.diff(drawn.mean(axis=(1, 2, 3))) > 0)  # draws kept in time order


def _stop_and_skip(name, tmp_path, manual, damage, expected_reasons):
  damage(manual)
  with pytest.raises(SourceFileError) as info:
    load_dataset(_data_cfg(name, tmp_path / "stop", manual))
  assert str(manual) in str(info.value) and "on_error=skip" in str(info.value)
  assert not os.path.exists(tmp_path / "stop" / "tfds" / name / "1.0.0" / "dataset_info.json")
  data = load_dataset(_data_cfg(name, tmp_path / "skip", manual, on_error="skip"))
  skipped = {k: v for k, v in data.build_report.items() if k.startswith("skipped")}
  assert skipped == expected_reasons
  return data


def test_food101_bad_input(tmp_path):
  manual = fixtures.write_food101(str(tmp_path / "food"))
  images = os.path.join(manual, "images", "train", "baklava")
  first, second, third = sorted(os.listdir(images))[:3]

  def damage(root):
    with open(os.path.join(images, first), "wb") as f:
      f.write(b"\xff\xd8 this is not a jpeg")
    os.remove(os.path.join(root, "texts_txt", "baklava", second.replace(".jpg", ".txt")))
    with open(os.path.join(root, "texts_txt", "baklava", third.replace(".jpg", ".txt")),
              "w") as f:
      f.write("A recipe page without the marker word.")

  data = _stop_and_skip("upmc_food101", tmp_path, manual, damage, {
      "skipped: corrupt image": 1, "skipped: photo without a recipe text": 1,
      "skipped: recipe text without the 'ingredients' marker": 1})
  assert data.build_report["kept"] == 61


@pytest.mark.parametrize("name", ["kinetics_sounds", "vggsound"])
def test_av_bad_input(name, tmp_path):
  manual = fixtures.write_av_clips(str(tmp_path / "clips"), name, per_class_train=4,
                                   per_class_test=1, seconds=2.0)
  if name == "kinetics_sounds":
    audio_root, frames_root = (os.path.join(manual, "train", "audio"),
                               os.path.join(manual, "train", "video"))
  else:
    audio_root, frames_root = (os.path.join(manual, "audio", "train"),
                               os.path.join(manual, "frames", "train"))
  label = sorted(os.listdir(frames_root))[0]
  clips = sorted(os.listdir(os.path.join(frames_root, label)))

  def damage(root):
    del root
    os.remove(os.path.join(audio_root, label, clips[0] + ".wav"))  # no audio track
    with open(os.path.join(audio_root, label, clips[1] + ".wav"), "wb") as f:
      f.write(b"RIFF....WAVEfmt garbage")
    os.remove(os.path.join(frames_root, label, clips[2], "frame_9.jpg"))
    with open(os.path.join(frames_root, label, clips[3], "frame_4.jpg"), "wb") as f:
      f.write(b"not an image")

  data = _stop_and_skip(name, tmp_path, manual, damage, {
      "skipped: clip without audio (no wav)": 1, "skipped: corrupt audio": 1,
      "skipped: clip with fewer than 10 frames": 1, "skipped: corrupt frame": 1})
  assert data.build_report["kept"] == 15 - 4


def test_missing_manual_dir_and_clip_lists(tmp_path):
  with pytest.raises(FileNotFoundError, match="set --config.data.manual_dir"):
    load_dataset(_data_cfg("upmc_food101", tmp_path, fixture=False))
  with pytest.raises(FileNotFoundError, match="images/train"):
    load_dataset(_data_cfg("upmc_food101", tmp_path, tmp_path))
  manual = fixtures.write_av_clips(str(tmp_path / "ks"), "kinetics_sounds", per_class_train=2,
                                   per_class_test=1, seconds=1.0)
  with open(os.path.join(manual, "my_train.txt")) as f:
    rows = f.readlines()
  with open(os.path.join(manual, "my_train.txt"), "w") as f:
    f.writelines(rows[1:])  # one clip is not in the official list
  with pytest.raises(SourceFileError, match="not in the official train list"):
    load_dataset(_data_cfg("kinetics_sounds", tmp_path / "a", manual))
  with pytest.raises(ValueError, match="official test split of 3 examples"):
    load_dataset(_data_cfg("kinetics_sounds", tmp_path / "b", manual, on_error="skip",
                           test_size=5))


def test_grain_workers_give_the_same_batches(tmp_path):
  """Augmentation draws are seeded by (seed, epoch, record): worker processes change
  nothing; two hosts read disjoint halves."""
  from rlmba_jax.data.streaming import index_batches
  data = load_dataset(_data_cfg("upmc_food101", tmp_path))
  rows = data.pool  # a split is a random-access source of its records
  positions = np.arange(len(data.pool))

  def batches(workers, **kw):
    return list(index_batches(rows, positions, batch_size=8, seed=3,
                              record_transform=data.train_transform, augment=True,
                              worker_count=workers, **kw))

  local, workers = batches(0), batches(2)
  assert len(local) == len(workers) == 6
  for a, b in zip(local, workers):
    for key in ("image", "text", "label", "_mask", "_index"):
      np.testing.assert_array_equal(a[key], b[key])
  hosts = [np.concatenate([b["_index"][b["_mask"]] for b in batches(0, shard_index=h,
                                                                    shard_count=2)])
           for h in range(2)]
  assert set(hosts[0]).isdisjoint(hosts[1])
  assert sorted(np.concatenate(hosts).tolist()) == positions.tolist()  # every record once


@pytest.mark.parametrize("name,columns", [("upmc_food101", {"image", "text"}),
                                          ("kinetics_sounds", {"frame", "audio"})])
def test_a_record_data_sets_picks_are_files_the_labelling_page_shows(name, columns, tmp_path):
  """Issue 30, 2: a person labelling a record data set sees each pick's photo and recipe
  text, or a clip's first frame and its sound, written under queries/round_NNN_items/."""
  import types
  import wave

  from rlmba_jax.person.oracle import PersonOracle
  data = load_dataset(_data_cfg(name, tmp_path))
  workdir = tmp_path / "run"
  asker = types.SimpleNamespace(workdir=str(workdir), data=data)
  shown = PersonOracle._record_files(asker, np.array([0, 2]), 1)  # pylint: disable=protected-access
  assert set(shown) == columns
  for column, cells in shown.items():
    assert len(cells) == 2 and all(c.startswith("queries/round_001_items/") for c in cells)
    body = open(workdir / cells[1], "rb").read()
    if column in ("image", "frame"):
      assert body[:2] == b"\xff\xd8"  # a JPEG, as stored
    elif column == "text":
      assert body.decode() == data.pool[2]["text"].decode()
    else:
      with wave.open(str(workdir / cells[1])) as w:
        assert w.getframerate() == 16000 and w.getnframes() == len(data.pool[2]["audio"])
