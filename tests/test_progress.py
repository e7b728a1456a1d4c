"""When ``eval.progress="auto"`` shows bars: in a terminal or a Jupyter kernel, not under CI,
and not in a process that merely imported ipykernel (one that starts kernels, as nbclient
and the test suite's notebook tests do)."""

import sys
import types

import pytest

from rlmba_jax.experiment import progress


class _Stream:
  def __init__(self, tty: bool):
    self.tty = tty

  def isatty(self):
    return self.tty


def _shell(kernel):
  return types.SimpleNamespace(get_ipython=lambda: types.SimpleNamespace(kernel=kernel))


def test_on_and_off_are_forced():
  assert progress.progress_wanted("on") and not progress.progress_wanted("off")


@pytest.mark.parametrize("tty,ci,want", [(True, None, True), (False, None, False),
                                         (True, "true", False)])
def test_auto_follows_the_terminal_and_ci(monkeypatch, tty, ci, want):
  monkeypatch.setattr(sys, "stderr", _Stream(tty))
  monkeypatch.delitem(sys.modules, "IPython", raising=False)
  if ci is None:
    monkeypatch.delenv("CI", raising=False)
  else:
    monkeypatch.setenv("CI", ci)
  assert progress.progress_wanted("auto") is want


def test_a_kernel_shows_bars_a_process_that_imported_ipykernel_does_not(monkeypatch):
  monkeypatch.delenv("CI", raising=False)
  monkeypatch.setattr(sys, "stderr", _Stream(False))
  # What jupyter_client imports in a process that starts a kernel:
  import ipykernel.kernelspec  # pylint: disable=g-import-not-at-top,unused-import
  assert "ipykernel" in sys.modules
  monkeypatch.setitem(sys.modules, "IPython", _shell(kernel=None))  # IPython, no kernel
  assert not progress.in_notebook() and not progress.progress_wanted("auto")
  monkeypatch.setitem(sys.modules, "IPython", _shell(kernel=object()))  # inside a kernel
  assert progress.in_notebook() and progress.progress_wanted("auto")


def _jobs(tmp_path, codes):
  from rlmba_jax.studies.sweeps import Job
  return [Job([sys.executable, "-c", code], str(tmp_path / "runs" / f"e{i}" / "seed0"))
          for i, code in enumerate(codes)]


def test_a_sweep_shows_a_bar_over_its_runs(tmp_path, capsys, monkeypatch):
  import json

  from rlmba_jax.studies.sweeps import run_jobs
  monkeypatch.delenv("CI", raising=False)
  failed = run_jobs([_jobs(tmp_path, ["pass", "raise SystemExit(3)"])], workers=2,
                    compile_cache="", progress="on")
  out = capsys.readouterr()
  assert failed == [str(tmp_path / "runs" / "e1" / "seed0")]
  lines = [json.loads(l) for l in out.out.splitlines() if l.startswith("{")]
  assert sorted(l["exit"] for l in lines) == [0, 3]
  assert "sweep" in out.err and "2/2" in out.err and "failed=1" in out.err
  monkeypatch.setenv("CI", "true")  # auto under CI: the JSON lines only
  assert run_jobs([_jobs(tmp_path / "b", ["pass"])], compile_cache="") == []
  out = capsys.readouterr()
  assert "sweep" not in out.err and '"exit": 0' in out.out


@pytest.mark.parametrize("show", [True, False])
def test_building_a_data_set_shows_tfds_bars_only_when_asked(tmp_path, capfd, show):
  from rlmba_jax.data import load_dataset
  from rlmba_jax.experiment.config import default_config
  cfg = default_config().data
  cfg.source, cfg.data_dir = "tfds", str(tmp_path)
  load_dataset(cfg, progress=show)
  err = capfd.readouterr().err
  assert ("Generating train examples" in err) == show, err[-2000:]
