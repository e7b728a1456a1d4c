import gzip
import os
import shutil
import sys

import numpy as np
import pytest

from rlmba_jax.data import load_dataset, uci_mfeat
from rlmba_jax.data.loading import check_finite
from rlmba_jax.data.specs import MultimodalArrays
from rlmba_jax.experiment.config import default_config

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "uci_mfeat")


def test_packaged_copy_reads_all_six_views():
  views, labels = uci_mfeat.read_mfeat_csvs()
  assert {k: v.shape for k, v in views.items()} == {
      "fou": (2000, 76), "fac": (2000, 216), "kar": (2000, 64), "pix": (2000, 240),
      "zer": (2000, 47), "mor": (2000, 6)}
  assert np.array_equal(np.bincount(labels), np.full(10, 200))
  assert views["pix"].min() == 0 and views["pix"].max() == 6


@pytest.mark.skipif(not os.path.isdir(SHARED), reason="../shared/data not present")
def test_packaged_copy_equals_the_shared_csvs():
  packaged, labels = uci_mfeat.read_mfeat_csvs()
  shared, shared_labels = uci_mfeat.read_mfeat_csvs(SHARED)
  assert np.array_equal(labels, shared_labels)
  for view in packaged:
    np.testing.assert_array_equal(packaged[view], shared[view])


def test_tfds_arrayrecord_roundtrip_without_tensorflow(tmp_path):
  cfg = default_config().data
  cfg.data_dir = str(tmp_path)
  from_tfds = load_dataset(cfg)
  cfg.source = "files"
  from_files = load_dataset(cfg)
  assert os.listdir(tmp_path / "uci_mfeat" / "1.0.0")
  assert any(f.endswith(".array_record-00000-of-00001")
             for f in os.listdir(tmp_path / "uci_mfeat" / "1.0.0"))
  for split in ("pool", "val", "test"):
    a, b = getattr(from_tfds, split), getattr(from_files, split)
    assert np.array_equal(a.ids, b.ids) and np.array_equal(a.labels, b.labels)
    for m in a.inputs:
      np.testing.assert_array_equal(a.inputs[m], b.inputs[m])
  assert "tensorflow" not in sys.modules
  # 1,400 pool rows less the two copies of validation / test rows (drop_pool_copies)
  assert from_tfds.pool.inputs["pix"].shape == (1398, 16, 15, 1)
  assert (len(from_tfds.pool), len(from_tfds.val), len(from_tfds.test)) == (1398, 200, 400)


def test_splits_are_disjoint_and_standardised():
  cfg = default_config().data
  cfg.source = "files"
  data = load_dataset(cfg)
  ids = np.concatenate([data.pool.ids, data.val.ids, data.test.ids])
  assert len(np.unique(ids)) == 1998
  fou = data.pool.inputs["fou"]
  np.testing.assert_allclose(fou.mean(0), 0, atol=1e-4)
  np.testing.assert_allclose(fou.std(0), 1, atol=1e-3)


def test_corrupt_or_missing_files_are_named(tmp_path):
  for view in uci_mfeat.VIEWS:
    shutil.copy(os.path.join(uci_mfeat.packaged_data_dir(), f"mfeat-{view}.csv.gz"), tmp_path)
  (tmp_path / "mfeat-zer.csv.gz").write_bytes(b"\x1f\x8b\x08garbage")
  with pytest.raises(ValueError, match="mfeat-zer.csv.gz.*corrupt"):
    uci_mfeat.read_mfeat_csvs(str(tmp_path))
  os.remove(tmp_path / "mfeat-zer.csv.gz")
  with pytest.raises(FileNotFoundError, match="no mfeat-zer.csv"):
    uci_mfeat.read_mfeat_csvs(str(tmp_path))


def test_nan_in_a_view_is_named(tmp_path):
  for view in uci_mfeat.VIEWS:
    shutil.copy(os.path.join(uci_mfeat.packaged_data_dir(), f"mfeat-{view}.csv.gz"), tmp_path)
  with gzip.open(tmp_path / "mfeat-mor.csv.gz", "rt") as f:
    lines = f.read().splitlines()
  lines[5] = "nan," + lines[5].split(",", 1)[1]
  with gzip.open(tmp_path / "mfeat-mor.csv.gz", "wt") as f:
    f.write("\n".join(lines) + "\n")
  with pytest.raises(ValueError, match="mfeat-mor.csv.gz.*non-finite.*row 4"):
    uci_mfeat.read_mfeat_csvs(str(tmp_path))


def test_check_finite_names_modality_and_ids():
  x = np.zeros((4, 3), np.float32)
  x[2, 1] = np.nan
  arrays = MultimodalArrays({"audio": x}, np.zeros(4, np.int32), np.array([10, 11, 12, 13]))
  with pytest.raises(ValueError, match=r"modality 'audio' has NaN/inf .* ids \[12\]"):
    check_finite(arrays, "pool")


def test_unknown_view_and_data_set():
  cfg = default_config().data
  cfg.source = "files"
  cfg.modalities = "fou,xyz"
  with pytest.raises(ValueError, match=r"uci_mfeat has no modality \['xyz'\]"):
    load_dataset(cfg)
  cfg.modalities = "fou"
  cfg.name = "imagenet"
  with pytest.raises(ValueError, match="not a known data set"):
    load_dataset(cfg)


def test_no_feature_row_is_in_two_splits():
  """UCI mfeat holds six pairs of identical examples (every view equal); two pairs fall
  across the splits (pool ids 1521 and 1892 copy validation id 1448 and test id 1999), so
  the pool leaves those copies out. ``drop_pool_copies=False`` is the earlier data."""
  from rlmba_jax.data.loading import row_keys
  cfg = default_config().data
  cfg.source, cfg.standardize = "files", False

  def shared(data):
    keys = {name: set(row_keys(part, np.arange(len(part))))
            for name, part in (("pool", data.pool), ("val", data.val), ("test", data.test))}
    return (len(keys["pool"] & keys["val"]) + len(keys["pool"] & keys["test"])
            + len(keys["val"] & keys["test"]))

  data = load_dataset(cfg)
  assert shared(data) == 0
  assert not {1521, 1892} & set(data.pool.ids.tolist())
  cfg.drop_pool_copies = False
  before = load_dataset(cfg)
  assert shared(before) == 2 and len(before.pool) == 1400


def test_mfeat_pix_as_a_vector_when_not_an_image():
  """``data.pix_as_image=False``: the pix view is its 240 values, read by an MLP encoder."""
  assert uci_mfeat.modality_specs(("pix",), True)[0].shape == (16, 15, 1)
  spec, = uci_mfeat.modality_specs(("pix",), False)
  assert (spec.shape, spec.kind) == ((240,), "vector")
  c = default_config()
  c.data.source, c.data.modalities, c.data.pix_as_image = "files", "pix,fou", False
  data = load_dataset(c.data)
  assert data.pool.inputs["pix"].shape[1:] == (240,)
