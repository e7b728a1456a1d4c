"""Every round's scalars as TensorBoard event files: ``tensorboard --logdir WORKDIR``.

``rounds.jsonl`` stays the record of truth; the event files in the workdir itself are
rewritten from it when a run starts (so a resumed run never holds duplicate points) and get
one point per finished round after that. The x axis is the number of labelled examples, and
TensorBoard names a run by its folder, so the runs of a sweep (one workdir per strategy and
seed) overlay in one TensorBoard as ``margin/seed_1000``, ``badge/seed_1000``, ...:
``tensorboard --logdir runs/sweep``. The writer keeps CLU's ``metric_writers`` interface
(``write_scalars(step, scalars)``, ``flush``, ``close``) over tensorboardX, which writes
TensorBoard's format without TensorFlow.
"""

from __future__ import annotations

import glob
import os
import shutil
from typing import Any, Mapping


EVENT_FILES = "events.out.tfevents.*"
_OLD_FOLDER = "tensorboard"  # where versions before 0.2 wrote them (run names ended in it)
# rounds.jsonl fields written as scalars (nested dicts become one scalar per key).
_SCALARS = ("val_top1", "val_nll", "val_ece", "test_top1", "test_nll", "test_ece",
            "test_macro_f1", "balance", "pool_uncertainty", "train_loss", "train_grad_norm",
            "select_seconds", "train_seconds", "eval_seconds", "skipped", "unanswered")
_PER_MODALITY = ("per_modality_val_top1", "per_modality_test_top1", "modality_weights",
                 "shapley", "top1_gap")


def event_files(workdir: str) -> list[str]:
  """The TensorBoard event files a run wrote in ``workdir``."""
  return sorted(glob.glob(os.path.join(workdir, EVENT_FILES)))


def round_scalars(record: Mapping[str, Any]) -> dict[str, float]:
  """The scalars of one ``rounds.jsonl`` record, named ``group/name``."""
  out = {}
  for key in _SCALARS:
    value = record.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
      group, _, name = key.partition("_")
      if name == "seconds":
        group, name = "seconds", group
      out[f"{group}/{name}" if name else group] = float(value)
  for key in _PER_MODALITY:
    for modality, value in (record.get(key) or {}).items():
      if isinstance(value, (int, float)):
        out[f"{key}/{modality}"] = float(value)
  for key in ("kappa", "mean_kappa", "val_gain"):
    value = (record.get("stopping") or {}).get(key)
    if isinstance(value, (int, float)):
      out[f"stopping/{key}"] = float(value)
  for key, value in (record.get("policy") or {}).items():
    if isinstance(value, (int, float)):
      out[f"policy/{key}"] = float(value)
  out["round"] = float(record["round"])
  return out


class MetricWriter:
  """CLU-style scalar writer into ``logdir`` (TensorBoard event files)."""

  def __init__(self, logdir: str):
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    self._writer = SummaryWriter(logdir=logdir, flush_secs=10)

  def write_text(self, tag: str, text: str) -> None:
    """``text`` as Markdown under ``tag`` (TensorBoard's text tab), at step 0."""
    self._writer.add_text(tag, text, global_step=0)

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    for name, value in scalars.items():
      self._writer.add_scalar(name, value, global_step=int(step))

  def flush(self) -> None:
    self._writer.flush()

  def close(self) -> None:
    self._writer.close()


class RoundLogger:
  """Writes the rounds of one run; ``start(history)`` rewrites what a resumed run had."""

  def __init__(self, workdir: str, enabled: bool = True, config_text: str = ""):
    self.logdir = workdir
    self.enabled = enabled
    self.config_text = config_text  # shown in TensorBoard's text tab ("config")
    self._writer: MetricWriter | None = None

  def start(self, history: list[Mapping[str, Any]]) -> None:
    if not self.enabled:
      return
    for path in event_files(self.logdir):
      os.remove(path)
    old = os.path.join(self.logdir, _OLD_FOLDER)
    if os.path.isdir(old):
      shutil.rmtree(old)
    self._writer = MetricWriter(self.logdir)
    if self.config_text:
      self._writer.write_text("config", self.config_text)
    for record in history:
      self.write(record)

  def write(self, record: Mapping[str, Any]) -> None:
    if self._writer is not None:
      self._writer.write_scalars(record["num_labeled"], round_scalars(record))
      self._writer.flush()

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()
      self._writer = None
