"""Round checkpoints with Orbax (the only module that touches Orbax).

A checkpoint ``r`` holds the array state after round ``r`` (parameters, optimiser state, the
labelled mask, and later the policy and modality-weight states) plus a JSON part (the
metric history). Orbax writes into a temporary folder and renames it when complete, so a
process killed mid-save leaves the previous checkpoint as the latest.
"""

from __future__ import annotations

import os
from typing import Any

import orbax.checkpoint as ocp


class RoundCheckpointer:
  """Saves and restores the round state under ``directory``."""

  def __init__(self, directory: str, max_to_keep: int = 2):
    self.directory = os.path.abspath(directory)
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                           enable_async_checkpointing=False,
                                           cleanup_tmp_directories=True)
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_round(self) -> int | None:
    self._manager.reload()
    return self._manager.latest_step()

  def save(self, round_index: int, state: Any, meta: dict) -> None:
    self._manager.save(round_index, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True)
    self._manager.wait_until_finished()

  def restore(self, round_index: int, target: Any) -> tuple[Any, dict]:
    """Restores round ``round_index`` into the structure, dtypes and shardings of ``target``."""
    try:
      restored = self._manager.restore(round_index, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()))
    except Exception as e:  # Orbax raises a variety of types for damaged folders
      raise RuntimeError(
          f"checkpoint {round_index} in {self.directory} cannot be read ({type(e).__name__}: "
          f"{e}). If it is damaged, move that round's folder away and run again: the run "
          "resumes from the previous checkpoint and the ledger is kept.") from e
    return restored.state, dict(restored.meta)

  def close(self) -> None:
    self._manager.close()
