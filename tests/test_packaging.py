"""What the wheel ships: every package, the configs as rlmba_jax.configs, the licence."""

import os
import subprocess
import sys
import tomllib
import zipfile

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


@pytest.mark.slow
def test_the_wheel_holds_the_configs_the_licence_and_py_typed(tmp_path):
  subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                  "-q", "-w", str(tmp_path), REPO], check=True, capture_output=True,
                 timeout=300)
  wheel, = [f for f in os.listdir(tmp_path) if f.endswith(".whl")]
  names = set(zipfile.ZipFile(tmp_path / wheel).namelist())
  for path in ("rlmba_jax/configs/mfeat.py", "rlmba_jax/configs/arrays.py",
               "rlmba_jax/py.typed", "rlmba_jax/data/uci_mfeat/mfeat-fou.csv.gz",
               "rlmba_jax/label.py"):
    assert path in names, path
  assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)


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
