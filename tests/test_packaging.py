"""What the wheel ships: every package, the configs as rlmba_jax.configs, the licence."""

import os
import subprocess
import sys
import tomllib
import zipfile

import numpy as np
import pytest

from conftest import REPO
from rlmba_jax import config_names


def test_every_package_folder_is_listed_for_the_wheel():
  with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
    tool = tomllib.load(f)["tool"]["setuptools"]
  folders = {os.path.relpath(d, REPO).replace(os.sep, ".")
             for d, _, files in os.walk(os.path.join(REPO, "rlmba_jax"))
             if "__init__.py" in files}
  assert set(tool["packages"]) == folders | {"rlmba_jax.configs"}
  assert tool["package-dir"] == {"rlmba_jax.configs": "configs"}


def test_config_names_resolve_to_the_packaged_files():
  configs = config_names.packaged_configs()
  assert {"mfeat", "av_digits", "arrays", "items", "food101"} <= set(configs)
  argv = ["rlmba-jax", "--config=mfeat:runlocal,paper", "--config", "arrays", "--workdir=w"]
  config_names.resolve_config_names(argv)
  assert argv[1] == "--config=" + configs["mfeat"] + ":runlocal,paper"
  assert argv[3] == configs["arrays"]
  kept = ["x", "--config=configs/mfeat.py:paper"]
  config_names.resolve_config_names(kept)
  assert kept[1] == "--config=configs/mfeat.py:paper"


def test_an_unknown_config_name_is_one_line_and_exit_2(tmp_path):
  out = subprocess.run([sys.executable, "-m", "rlmba_jax.main", "--config=mfeet:runlocal",
                        f"--workdir={tmp_path / 'w'}"], cwd=tmp_path, capture_output=True,
                       text=True, timeout=120)
  assert out.returncode == 2
  assert "'mfeet' is neither a config file nor a packaged config" in out.stderr


def test_a_config_file_that_is_missing_or_does_not_parse_is_one_line_and_exit_2(tmp_path):
  (tmp_path / "broken.py").write_text("def get_config(\n")
  for value, message in (("nothere.py", "--config=nothere.py: cannot read the config file "
                                        "([Errno 2] No such file or directory"),
                         ("broken.py", "the config file broken.py does not parse: '(' was "
                                       "never closed (line 1)")):
    out = subprocess.run([sys.executable, "-m", "rlmba_jax.main", f"--config={value}",
                          f"--workdir={tmp_path / 'w'}"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2 and message in out.stderr, out.stderr[-2000:]
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
  assert not (tmp_path / "w").exists()


def test_a_sweep_reads_run_arguments_as_the_command_does(tmp_path):
  from rlmba_jax.errors import ConfigError
  from rlmba_jax.studies.sweeps import config_from_arguments
  config, workdir = config_from_arguments(
      ["--config=mfeat:runlocal", f"--workdir={tmp_path}", "--config.seed=3",
       "--config.modality.amcb=false", "--config.al.rlmba.beta=0.25"])
  assert (config.seed, config.modality.amcb, config.al.rlmba.beta) == (3, False, 0.25)
  assert workdir == str(tmp_path)
  (tmp_path / "broken.py").write_text("def get_config(\n")
  for args, message in (([f"--config={tmp_path / 'nothere.py'}"], "cannot read the config"),
                        ([f"--config={tmp_path / 'broken.py'}"], "does not parse"),
                        (["--config=mfeet"], "neither a config file nor a packaged"),
                        (["--config=mfeat", "--config.al.nope=1"], "nope"),
                        (["--config=mfeat", "--config.seed=abc"], "invalid literal")):
    with pytest.raises(ConfigError, match=message):
      config_from_arguments([*args, "--workdir=w"])


@pytest.mark.slow
def test_the_wheel_holds_the_configs_the_licence_and_py_typed(tmp_path):
  subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                  "-q", "-w", str(tmp_path), REPO], check=True, capture_output=True,
                 timeout=300)
  wheel, = [f for f in os.listdir(tmp_path) if f.endswith(".whl")]
  names = set(zipfile.ZipFile(tmp_path / wheel).namelist())
  for path in ("rlmba_jax/configs/mfeat.py", "rlmba_jax/configs/arrays.py",
               "rlmba_jax/py.typed", "rlmba_jax/data/uci_mfeat/mfeat-fou.csv.gz",
               "rlmba_jax/label.py", "rlmba_jax/person/page.html", "rlmba_jax/sweep.py",
               "rlmba_jax/tune.py"):
    assert path in names, path
  assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
  # the sweeps and the search run from an installed wheel, as commands
  entry_points, = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
  text = zipfile.ZipFile(tmp_path / wheel).read(entry_points).decode()
  for line in ("rlmba-sweep = rlmba_jax.sweep:entry_point",
               "rlmba-tune = rlmba_jax.tune:entry_point"):
    assert line in text


def test_a_packaged_config_name_works_for_the_sweep_command(tmp_path):
  """``--config=mfeat:runlocal`` from any folder (the wheel's configs), and a wrong name is
  one line with exit code 2."""
  env = dict(os.environ, PYTHONPATH=REPO)
  done = subprocess.run([sys.executable, "-m", "rlmba_jax.sweep", "--config=mfeat:runlocal",
                         f"--workdir={tmp_path / 'sweep'}", "--strategies=random",
                         "--seeds=1", "--report_only"], cwd=tmp_path, env=env,
                        capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-2000:]
  assert (tmp_path / "sweep" / "report.md").exists()
  wrong = subprocess.run([sys.executable, "-m", "rlmba_jax.sweep", "--config=mfeet",
                          f"--workdir={tmp_path / 'w'}"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
  assert wrong.returncode == 2 and "neither a config file nor a packaged" in wrong.stderr


def test_a_missing_extra_names_what_to_install(monkeypatch, tmp_path):
  from rlmba_jax import extras
  from rlmba_jax.experiment import DataError, run
  from rlmba_jax.experiment.config import default_config
  monkeypatch.setitem(sys.modules, "librosa", None)  # import librosa -> ImportError
  with pytest.raises(extras.MissingExtraError, match=r"pip install 'rlmba_jax\[audio\]'"):
    extras.require("librosa", "the audio spectrogram")
  config = default_config()
  config.data.name, config.data.modalities = "av_digits", "audio,image"
  config.data.source = "files"
  config.data.test_size, config.data.val_size = 300, 200
  config.data.manual_dir = os.path.join(REPO, "tests", "data", "fsdd")
  with pytest.raises(DataError, match=r"reading the FSDD recordings needs the Python "
                                      r"package 'librosa'.*rlmba_jax\[audio\]"):
    run(config, str(tmp_path / "w"))
  assert not (tmp_path / "w").exists()


def _without_the_data_extra(monkeypatch):
  for module in ("tensorflow_datasets", "grain", "array_record"):
    monkeypatch.setitem(sys.modules, module, None)  # import -> ImportError, find_spec -> None


def test_without_the_data_extra_mfeat_reads_its_csvs_and_tfds_names_the_extra(monkeypatch,
                                                                              tmp_path):
  from rlmba_jax import extras
  from rlmba_jax.data import load_dataset
  from rlmba_jax.data.loading import resolve_source
  from rlmba_jax.data.registry import dataset_info
  from rlmba_jax.experiment.config import default_config
  cfg = default_config().data
  cfg.data_dir = str(tmp_path)
  assert cfg.source == "auto"
  with_extra = load_dataset(cfg)  # the test install has [data]: the ArrayRecord copy
  assert resolve_source(cfg, dataset_info("uci_mfeat")) == "tfds"
  _without_the_data_extra(monkeypatch)
  assert not extras.available("tensorflow_datasets")
  assert resolve_source(cfg, dataset_info("uci_mfeat")) == "files"
  without = load_dataset(cfg)
  for split in ("pool", "val", "test"):
    a, b = getattr(with_extra, split), getattr(without, split)
    assert np.array_equal(a.ids, b.ids)
    for m in a.inputs:
      np.testing.assert_array_equal(a.inputs[m], b.inputs[m])
  cfg.source = "tfds"
  with pytest.raises(extras.MissingExtraError, match=r"pip install 'rlmba_jax\[data\]'"):
    load_dataset(cfg)


def test_without_the_data_extra_a_record_data_set_stops_naming_it(monkeypatch, tmp_path):
  from rlmba_jax.data.items import write_demo_items
  from rlmba_jax.experiment import DataError, run
  from rlmba_jax.experiment.config import default_config
  folder = write_demo_items(str(tmp_path / "items"))
  _without_the_data_extra(monkeypatch)
  config = default_config()
  config.data.name, config.data.modalities, config.data.manual_dir = "items", "", folder
  config.data.data_dir = str(tmp_path / "tfds")
  with pytest.raises(DataError, match=r"needs the Python package 'tensorflow_datasets'.*"
                                      r"pip install 'rlmba_jax\[data\]'"):
    run(config, str(tmp_path / "w"))
  assert not (tmp_path / "w").exists()
