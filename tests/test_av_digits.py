"""av_digits: real FSDD recordings (20-file fixture) paired with 8x8 digit images."""

import os
import shutil

import numpy as np
import pytest

from rlmba_jax.data import av_digits, load_dataset
from rlmba_jax.experiment.config import default_config


FIXTURE = os.path.join(os.path.dirname(__file__), "data", "fsdd")


def _config(source, **extra):
  c = default_config()
  c.data.name = "av_digits"
  c.data.modalities = "audio,image"
  c.data.source = source
  c.data.manual_dir = FIXTURE
  c.data.test_size = 10  # jackson's index-0 recordings
  c.data.val_size = 0
  for k, v in extra.items():
    setattr(c.data, k, v)
  return c.data


def person_config():
  """A person's run on the fixture: 4 initial labels (from the data), one round of 3 asked
  with margin sampling, tiny training."""
  from conftest import make_tiny_config
  config = make_tiny_config(**{"al.rounds": 1, "al.initial_size": 4, "al.oracle": "person",
                               "al.budget_per_round": 3, "train.num_epochs": 2,
                               "train.batch_size": 4, "al.strategy": "margin"})
  config.data = _config("files", test_size=10, val_size=2)
  return config


def test_columns_from_real_recordings():
  cols = av_digits.build_columns(FIXTURE)
  assert cols["audio"].shape == (20, 40, 100, 1)
  assert np.isfinite(cols["audio"]).all()
  assert sorted(cols["label"].tolist()) == sorted(list(range(10)) * 2)
  assert int(cols["is_test"].sum()) == 10  # index 0-4 is FSDD's official test split
  # Spoken digits have energy well above the 1e-6 floor of silence.
  assert cols["audio"].max() > np.log(1e-6) + 10
  assert "image" not in cols  # version 2: images are paired once the split is known
  split = {"test": np.flatnonzero(cols["is_test"]), "val": np.zeros(0, int),
           "pool": np.flatnonzero(~cols["is_test"])}
  paired = av_digits.split_images(cols, split)
  # Every image shows the spoken digit (scikit-learn's labels), and pairing is seeded.
  from sklearn.datasets import load_digits
  digits = load_digits()
  for img, label in zip(paired["image"][..., 0], cols["label"]):
    match = np.flatnonzero((digits.images == img).all(axis=(1, 2)))
    assert digits.target[match[0]] == label
  assert paired["image"].shape == (20, 8, 8, 1)
  np.testing.assert_array_equal(av_digits.split_images(cols, split)["image"], paired["image"])


def _split_of_fsdd(seed=0):
  """FSDD's layout without its audio: 3,000 recordings, 300 per class, index 0-4 of each
  speaker and digit (30 per class) in test; 200 stratified validation rows."""
  from rlmba_jax.data import splits
  labels = np.repeat(np.arange(10), 300).astype(np.int32)
  is_test = np.tile(np.arange(300) % 50 < 5, 10)
  rest = np.flatnonzero(~is_test)
  val, pool = splits.stratified_split(labels[rest], (200,), seed)
  return labels, {"test": np.flatnonzero(is_test), "val": rest[val], "pool": rest[pool]}


@pytest.mark.parametrize("seed", [0, 3])
def test_no_image_is_in_two_splits(seed):
  """The leak of version 1.0.0: 223 of the 300 test recordings shared an image with the
  pool or validation. Now each split's images are its own."""
  labels, split = _split_of_fsdd(seed)
  index = av_digits.split_image_indices(labels, split)
  sets = {name: set(index[rows].tolist()) for name, rows in split.items()}
  assert not sets["test"] & sets["pool"] and not sets["test"] & sets["val"]
  assert not sets["val"] & sets["pool"]
  assert len(sets["test"]) == 300 and len(sets["val"]) == 200  # no repeats there
  _, targets = av_digits._digits()  # pylint: disable=protected-access
  np.testing.assert_array_equal(targets[index], labels)
  # The old pairing, replayed: images cycled over all rows whatever their split.
  old = {c: 0 for c in range(10)}
  rng = np.random.default_rng(av_digits.PAIRING_SEED)
  by_class = {c: rng.permutation(np.flatnonzero(targets == c)) for c in range(10)}
  old_index = np.empty(len(labels), int)
  for i, c in enumerate(labels):
    old_index[i] = by_class[c][old[c] % len(by_class[c])]
    old[c] += 1
  others = set(old_index[np.concatenate([split["val"], split["pool"]])].tolist())
  assert sum(i in others for i in old_index[split["test"]]) > 200


def test_too_few_images_for_the_splits_is_an_error():
  labels = np.zeros(400, np.int32)  # 400 zeros and 178 images of a zero
  split = {"test": np.arange(100), "val": np.arange(100, 200), "pool": np.arange(200, 400)}
  with pytest.raises(ValueError, match="class 0 has 178 images, too few"):
    av_digits.split_image_indices(labels, split)


def test_log_mel_of_silence_and_of_long_clips():
  silence = av_digits.log_mel(np.zeros(3000, np.float32))
  assert silence.shape == (40, 100, 1)
  np.testing.assert_allclose(silence, np.log(1e-6), atol=1e-6)
  long = av_digits.log_mel(np.random.default_rng(0).normal(size=20000).astype(np.float32))
  assert long.shape == (40, 100, 1) and np.isfinite(long).all()


@pytest.mark.parametrize("source", ["files", "tfds"])
def test_load_dataset_uses_the_official_test_split(source, tmp_path):
  import sys
  data = load_dataset(_config(source, data_dir=str(tmp_path)))
  assert "tensorflow" not in sys.modules  # TFDS builds and reads ArrayRecord without TF
  assert len(data.test) == 10 and len(data.pool) == 10 and len(data.val) == 0
  assert [s.name for s in data.modalities] == ["audio", "image"]
  assert data.pool.inputs["audio"].shape == (10, 40, 100, 1)
  with pytest.raises(ValueError, match="official test split of 10 examples; set config.data.test_size=10"):
    load_dataset(_config(source, data_dir=str(tmp_path), test_size=4))


def test_bad_recordings_are_named(tmp_path):
  with pytest.raises(FileNotFoundError, match="set --config.data.manual_dir"):
    av_digits.build_columns("")
  with pytest.raises(FileNotFoundError, match="no .wav files"):
    av_digits.build_columns(str(tmp_path))
  bad = tmp_path / "recordings"
  shutil.copytree(os.path.join(FIXTURE, "recordings"), bad)
  (bad / "3_nobody_1.wav").write_bytes(b"RIFF....not a wave file")
  with pytest.raises(ValueError, match=r"3_nobody_1.wav.*corrupt"):
    av_digits.build_columns(str(tmp_path))
  (bad / "3_nobody_1.wav").unlink()
  (bad / "three.wav").write_bytes(b"")
  with pytest.raises(ValueError, match=r"three.wav' is not named"):
    av_digits.build_columns(str(tmp_path))


@pytest.mark.slow
def test_active_learning_runs_on_the_fixture(tmp_path):
  import importlib.util

  from rlmba_jax.experiment import run
  path = os.path.join(os.path.dirname(__file__), "..", "configs", "av_digits.py")
  spec = importlib.util.spec_from_file_location("av_cfg", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config("runlocal")
  config.data.manual_dir, config.data.source = FIXTURE, "files"
  config.data.test_size, config.data.val_size = 10, 2
  config.al.initial_size, config.al.budget_per_round, config.al.rounds = 4, 2, 1
  config.al.strategy = "entropy"
  config.train.batch_size, config.train.eval_batch_size = 4, 8
  summary = run(config, str(tmp_path))
  assert summary["num_labeled"] == [4, 6]


def test_a_person_labelling_av_digits_sees_and_hears_every_item(tmp_path):
  """Built-in data on the page (issue 30, 2): each pick's stored log-mel and image drawn
  from the run's own queries/round_NNN_items.npz, and its FSDD recording played."""
  import csv

  from rlmba_jax.experiment import LabelsNeeded, run
  from rlmba_jax.person import page
  config = person_config()
  workdir = str(tmp_path / "run")
  pool = load_dataset(config.data).pool
  # the initial set is drawn among the pool's labels; round 1 is asked
  with pytest.raises(LabelsNeeded):
    run(config, workdir)
  path = os.path.join(workdir, "queries", "round_001.csv")
  rows = list(csv.DictReader(open(path)))
  assert rows and set(rows[0]) >= {"id", "audio", "image", "recording"}
  session = page.LabellingSession(workdir)
  stored = np.load(os.path.join(workdir, "queries", "round_001_items.npz"))
  for k, row in enumerate(rows):
    assert row["audio"] == f"queries/round_001_items.npz:audio[{k}]"
    for modality in ("audio", "image"):
      kind, body = session.content(row[modality])
      assert kind == "image/png" and body.startswith(b"\x89PNG")
      # the log-mel is drawn with its lowest band (row 0) at the bottom, the image upright
      x = stored[modality][k]
      assert body == page._png(x[::-1] if modality == "audio" else x)
      if not np.array_equal(x, x[::-1]):  # the other orientation is another picture
        assert body != page._png(x[::-1] if modality == "image" else x)
    kind, body = session.content(row["recording"])
    wav = os.path.join(FIXTURE, row["recording"])
    assert kind.startswith("audio/") and body == open(wav, "rb").read()
    # the recording is the item's own: its file name starts with the spoken digit
    position = int(np.flatnonzero(pool.ids == int(row["id"]))[0])
    assert os.path.basename(wav).startswith(f"{pool.labels[position]}_")
  with pytest.raises(FileNotFoundError):
    session.content("queries/round_001_items.npz:audio[99]")  # not a cell of the round
