"""The ledger: the append-only record of which example ids were labelled in which round.

One JSON line per round, ``{"round": r, "ids": [...]}`` (round 0 = the initial set). Each
line is written with a single ``write`` and ``fsync``; a line cut short by a crash (no
trailing newline, or not valid JSON) was never committed and is moved aside on the next
open, so the ledger never holds a half-written round.
"""

from __future__ import annotations

import json
import os
import time
from typing import Sequence

from rlmba_jax.experiment.io import append_line


class LedgerError(RuntimeError):
  pass


class Ledger:
  """Append-only ``ledger.jsonl``."""

  def __init__(self, path: str):
    self.path = path

  def read(self) -> list[dict]:
    """Returns the committed rounds in order, moving a torn last line aside."""
    if not os.path.exists(self.path):
      return []
    with open(self.path, "rb") as f:
      data = f.read()
    lines = data.split(b"\n")
    committed, tail = lines[:-1], lines[-1]
    rounds = []
    for number, line in enumerate(committed):
      try:
        entry = json.loads(line)
      except json.JSONDecodeError as e:
        if number == len(committed) - 1 and not tail:
          # The final line is complete but unparsable: a torn write, treat as uncommitted.
          tail = line + b"\n"
          committed = committed[:-1]
          break
        raise LedgerError(f"{self.path}: line {number + 1} is not valid JSON ({e}); the "
                          "ledger is damaged. Restore it from a backup; nothing was "
                          "changed.") from e
      if entry.get("round") != number or not isinstance(entry.get("ids"), list):
        raise LedgerError(f"{self.path}: line {number + 1} should be round {number} with a "
                          f"list of ids, found {str(entry)[:80]!r}; nothing was changed.")
      rounds.append(entry)
    if tail:
      torn = f"{self.path}.torn-{int(time.time())}"
      with open(torn, "wb") as f:
        f.write(tail)
      keep = b"".join(line + b"\n" for line in committed[:len(rounds)])
      with open(self.path, "r+b") as f:
        f.truncate(len(keep))
        f.flush()
        os.fsync(f.fileno())
    return rounds

  def append(self, round_index: int, ids: Sequence[int]) -> None:
    """Commits one round's ids (durable when this returns)."""
    existing = self.read()
    if round_index != len(existing):
      raise LedgerError(f"{self.path}: appending round {round_index} but the ledger holds "
                        f"{len(existing)} rounds")
    append_line(self.path, json.dumps({"round": int(round_index),
                                       "ids": [int(i) for i in ids]}, separators=(",", ":")))
