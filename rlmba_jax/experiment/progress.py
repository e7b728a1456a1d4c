"""What a run shows while it works: one progress bar over the rounds, one over the current
round's training epochs, and the phase (select, train, evaluate) with the latest validation
top-1. Epochs are reported between compiled calls of a tenth of the epochs each
(``train.Trainer``'s ``epoch_callback``): about ten host syncs per round, never one per
step, and programs the compilation cache keeps (``launch/progress_cost.py`` measures it).

``config.eval.progress``: ``"auto"`` shows bars when stderr is a terminal or the run is in a
notebook, and not under CI (``$CI``); ``"on"`` / ``"off"`` force it. tqdm draws them (a
widget in notebooks when ipywidgets is installed, text otherwise).
"""

from __future__ import annotations

import os
import sys
from typing import Any, Mapping, Sequence
import warnings

from rlmba_jax.config_choices import PROGRESS


def progress_wanted(setting: str) -> bool:
  if setting != "auto":
    return setting == "on"
  if os.environ.get("CI"):
    return False
  return in_notebook() or (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())


def in_notebook() -> bool:
  """Whether this process is a Jupyter kernel (Colab's included). Having imported ipykernel
  is not enough: jupyter_client imports it in any process that starts a kernel."""
  ipython = sys.modules.get("IPython")
  shell = ipython.get_ipython() if ipython is not None else None
  return shell is not None and getattr(shell, "kernel", None) is not None


class RunProgress:
  """Bars for one run (a no-op when disabled). ``epoch_callback`` is what the trainer
  calls at each epoch's end. A seed-batched run (``seeds`` > 1) counts seed-rounds."""

  def __init__(self, enabled: bool, *, strategy: str, num_epochs: int, seeds: int = 1):
    self.enabled, self.strategy, self.num_epochs = enabled, strategy, num_epochs
    self.seeds = seeds
    self._rounds = self._epochs = None

  def begin(self, rounds: int, start: int) -> None:
    """Shows the rounds bar (rounds 0..``rounds``, ``start`` of them done)."""
    if not self.enabled:
      return
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")  # tqdm.auto's "IProgress not found" in bare Jupyter
      from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top
    self._tqdm = tqdm
    n = self.seeds
    self._rounds = tqdm(total=(rounds + 1) * n, initial=min(start, rounds + 1) * n,
                        unit="round" if n == 1 else "seed-round",
                        desc=self.strategy if n == 1 else f"{self.strategy} x{n} seeds",
                        position=0, leave=True, dynamic_ncols=True)

  def phase(self, r: int, name: str, **info: Any) -> None:
    if self._rounds is None:
      return
    self._rounds.set_postfix(round=r, phase=name, **info, refresh=True)
    if name == "train":
      if self._epochs is not None:
        self._epochs.close()
      self._epochs = self._tqdm(total=self.num_epochs, unit="epoch", desc=f"round {r}",
                                position=1, leave=False, dynamic_ncols=True)

  def epoch_callback(self, epoch, loss) -> None:
    """Host side of the trainer's per-epoch callback: ``(epoch index, mean loss)``."""
    if self._epochs is not None:
      self._epochs.update(1)
      self._epochs.set_postfix(loss=f"{float(loss):.4f}", refresh=False)

  def round_done(self, records: Sequence[Mapping[str, Any]]) -> None:
    """A round finished: its record for each seed."""
    if self._rounds is None:
      return
    if self._epochs is not None:
      self._epochs.close()
      self._epochs = None
    self._rounds.update(len(records))
    val = sum(r["val_top1"] for r in records) / len(records)
    self._rounds.set_postfix(labels=records[0]["num_labeled"], val_top1=f"{val:.3f}",
                             refresh=True)

  def write(self, line: str) -> None:
    """A line above the bars (the round's summary), without breaking them."""
    if self._rounds is not None:
      self._rounds.write(line, file=sys.stderr)
    else:
      print(line, file=sys.stderr)

  def close(self) -> None:
    for bar in (self._epochs, self._rounds):
      if bar is not None:
        bar.close()
    self._epochs = self._rounds = None
