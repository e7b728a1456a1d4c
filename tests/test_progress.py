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
