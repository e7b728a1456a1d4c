"""The ledger: the append-only record of which example ids were labelled in which round.

One JSON line per round, ``{"round": r, "ids": [...], "digest": "..."}`` (round 0 = the
initial set). ``digest`` chains the line to the one before (sha256 of the previous digest
and this line's round and ids), so an edited, dropped or reordered line is refused with its
line number. Each line is written with a single ``write`` and ``fsync``. A last line cut
short by a crash is either complete but for its newline (then it is completed: it was
fully written) or not valid JSON (then it was never committed and is moved aside to
``ledger.jsonl.torn-<time>``); either way the ledger never holds a half-written round.
Every line must carry its digest: a line without one is refused like an edited one.

With a person as the oracle (``person.files``) a line also holds what the person said:
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

import jax
from jax.experimental import multihost_utils
import numpy as np

from rlmba_jax.csv_files import as_id
from rlmba_jax.durable import append_line
from rlmba_jax.errors import WorkdirError
from rlmba_jax.person import files as person_files


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


def workdir_of(ledger: Ledger) -> str:
  """The workdir a (single run's) ledger lives in."""
  return os.path.dirname(ledger.path)


def pending_positions(ledger: Ledger, start: int, pool_ids: np.ndarray, labelled,
                       entries: list[dict[str, Any]], rounds: int) -> list[np.ndarray]:
  """The pool positions of the ledger's lines from round ``start`` on (labelled after the
  latest checkpoint), after checking that its earlier lines name exactly the labelled set
  the checkpoint holds (a person's skipped or unanswered items are not labelled)."""
  moved = (f" (a torn last line was moved to {ledger.moved_aside})" if ledger.moved_aside
           else "; nothing was changed")
  if len(entries) < start:
    raise WorkdirError(
        f"{ledger.path} records {len(entries)} rounds but the latest checkpoint is round "
        f"{start - 1}: the ledger lost lines{moved}. Restore the ledger or start a new "
        "workdir.")
  if len(entries) > rounds + 1:
    raise WorkdirError(
        f"{ledger.path} records {len(entries)} rounds (0-{len(entries) - 1}) but "
        f"al.rounds={rounds} runs rounds 0-{rounds}: raise al.rounds to {len(entries) - 1} to "
        f"continue it, or restore the ledger{moved}.")
  position_of = {str(i): p for p, i in enumerate(pool_ids)}  # str(id): any id
  positions = []
  for r, entry in enumerate(entries):
    unknown = [i for i in entry["ids"] if str(i) not in position_of]
    if unknown:
      raise WorkdirError(f"ledger round {r} names ids {unknown[:5]} that are not in the "
                         f"pool of this data split{moved}")
    positions.append(np.asarray([position_of[str(i)] for i in entry["ids"]], np.int32))
  mask = np.zeros(len(pool_ids), bool)
  for p, entry in zip(positions[:start], entries):
    mask[p[person_files.answered(entry)]] = True
  restored = np.asarray(jax.device_get(labelled), bool)
  if not np.array_equal(mask, restored):
    raise WorkdirError(
        f"the labelled set of checkpoint {start - 1} ({int(restored.sum())} examples) is not "
        f"the one the ledger's rounds 0-{start - 1} name ({int(mask.sum())}): the ledger or "
        f"the checkpoints were edited or mixed up{moved}. Restore them or start a new "
        "workdir.")
  return positions[start:]


def share_from_process_zero(positions: list[np.ndarray] | None, refused: bool = False
                             ) -> list[np.ndarray] | None:
  """Process 0's pending ledger lines on every process: only process 0 reads the ledger, and
  every process must replay the same lines rather than select again. ``refused``: process 0
  refused the ledger; the others stop too instead of waiting for it."""
  if jax.process_count() == 1:
    return positions
  count = int(multihost_utils.broadcast_one_to_all(
      np.int32(-1 if refused else len(positions or []))))
  if count < 0:
    if jax.process_index() == 0:
      return None
    raise WorkdirError("process 0 refused the workdir's ledger; its message says why")
  shared = []
  for i in range(count):
    size = int(multihost_utils.broadcast_one_to_all(
        np.int32(len(positions[i]) if positions is not None else 0)))
    mine = positions[i] if positions is not None else np.zeros(size, np.int32)
    shared.append(np.asarray(multihost_utils.broadcast_one_to_all(mine), np.int32))
  return shared
