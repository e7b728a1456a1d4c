"""The ledger: the append-only record of which example ids were labelled in which round.

One JSON line per round, ``{"round": r, "ids": [...], "digest": "..."}`` (round 0 = the
initial set). ``digest`` chains the line to the one before (sha256 of the previous digest
and this line's round and ids), so an edited, dropped or reordered line is refused with its
line number. Each line is written with a single ``write`` and ``fsync``. A last line cut
short by a crash is either complete but for its newline (then it is completed: it was
fully written) or not valid JSON (then it was never committed and is moved aside to
``ledger.jsonl.torn-<time>``); either way the ledger never holds a half-written round.
Every line must carry its digest: a line without one is refused like an edited one.

With a person as the oracle (``experiment.oracle``) a line also holds what the person said:
``"labels"`` (a class name per id, null for an id skipped or left unanswered), ``"skipped"``
and, when the answers file names them, ``"annotators"``; the digest covers them too. A line
without ``"labels"`` was labelled from the data set.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Any, Sequence

from rlmba_jax.csv_files import as_id
from rlmba_jax.experiment.errors import WorkdirError
from rlmba_jax.experiment.io import append_line


class LedgerError(WorkdirError):
  pass


# Fields of a line besides round, ids and digest (a person's answers), in digest order.
ANSWER_FIELDS = ("labels", "skipped", "annotators", "queries", "strategy")


def line_digest(previous: str, round_index: int, ids: Sequence[int],
                answers: dict[str, Any] | None = None) -> str:
  """The chained digest of one line: 16 hex digits of sha256(previous digest, round, ids
  and the answer fields when there are any)."""
  line = {"round": int(round_index), "ids": [as_id(i) for i in ids]}
  for key in ANSWER_FIELDS:
    if answers and key in answers:
      line[key] = answers[key]
  body = json.dumps(line, separators=(",", ":"))
  return hashlib.sha256((previous + body).encode()).hexdigest()[:16]


class Ledger:
  """Append-only ``ledger.jsonl``. ``moved_aside``: the file a torn last line was moved to
  by the latest ``read`` (None if nothing was moved)."""

  def __init__(self, path: str):
    self.path = path
    self.moved_aside: str | None = None

  def read(self) -> list[dict[str, Any]]:
    """Returns the committed rounds in order (repairing or moving aside a torn last line);
    raises ``LedgerError`` naming the first line that is damaged or edited."""
    self.moved_aside = None
    if not os.path.exists(self.path):
      return []
    try:
      with open(self.path, "rb") as f:
        data = f.read()
    except OSError as e:
      raise LedgerError(f"{self.path} cannot be read ({e.strerror}); it must be the run's "
                        "ledger file. Restore it; nothing was changed.") from None
    *lines, tail = data.split(b"\n")
    if not tail and lines and not lines[-1].strip():
      lines = lines[:-1]  # a trailing blank line
    rounds, previous = [], ""
    for number, line in enumerate(lines, start=1):
      entry = self._parse(line, number)
      previous = self._check(entry, number, len(rounds), previous)
      rounds.append(entry)
    if tail:
      rounds = self._torn_tail(tail, rounds, previous, len(data) - len(tail))
    return rounds

  def _parse(self, line: bytes, number: int) -> dict[str, Any]:
    try:
      entry = json.loads(line)
    except json.JSONDecodeError as e:
      raise LedgerError(f"{self.path}: line {number} is not valid JSON ({e}); the ledger is "
                        "damaged. Restore it from a backup; nothing was changed.") from e
    if not isinstance(entry, dict):
      raise LedgerError(f"{self.path}: line {number} is not a JSON object; nothing was "
                        "changed.")
    return entry

  def _check(self, entry: dict[str, Any], number: int, expected_round: int,
             previous: str) -> str:
    """Validates one line against its position and the chain; returns its digest."""
    if entry.get("round") != expected_round or not isinstance(entry.get("ids"), list):
      raise LedgerError(f"{self.path}: line {number} should be round {expected_round} with a "
                        f"list of ids, found {str(entry)[:80]!r}; nothing was changed.")
    if "digest" not in entry:
      raise LedgerError(f"{self.path}: line {number} has no digest: it was written or edited "
                        "by hand (or by a version before digests). Restore the ledger or "
                        "start a new workdir; nothing was changed.")
    want = line_digest(previous, entry["round"], entry["ids"], entry)
    if entry["digest"] != want:
      raise LedgerError(
          f"{self.path}: line {number} (round {entry['round']}) does not match its digest: "
          "its ids or answers were edited, or a line before it was changed, removed or reordered. "
          "Restore the ledger from a backup or start a new workdir; nothing was changed.")
    return want

  def _torn_tail(self, tail: bytes, rounds: list, previous: str, keep: int) -> list:
    """A last line without its newline: completed if it is a whole valid line, else moved
    aside (it was never committed)."""
    try:
      entry = json.loads(tail)
      self._check(entry, len(rounds) + 1, len(rounds), previous)
    except (json.JSONDecodeError, LedgerError, AttributeError):
      self.moved_aside = f"{self.path}.torn-{int(time.time())}"
      with open(self.moved_aside, "wb") as f:
        f.write(tail)
      with open(self.path, "r+b") as f:
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
      return rounds
    append_line(self.path, "")  # the newline the crash cut off
    return rounds + [entry]

  def append(self, round_index: int, ids: Sequence[int],
             answers: dict[str, Any] | None = None) -> None:
    """Commits one round's ids (and a person's ``answers``: ``ANSWER_FIELDS``), durable when
    this returns."""
    existing = self.read()
    if round_index != len(existing):
      raise LedgerError(f"{self.path}: appending round {round_index} but the ledger holds "
                        f"{len(existing)} rounds")
    previous = existing[-1].get("digest", "") if existing else ""
    ids = [as_id(i) for i in ids]
    line: dict[str, Any] = {"round": int(round_index), "ids": ids}
    line.update({k: answers[k] for k in ANSWER_FIELDS if answers and k in answers})
    line["digest"] = line_digest(previous, round_index, ids, answers)
    append_line(self.path, json.dumps(line, separators=(",", ":")))
