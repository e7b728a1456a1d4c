"""Which rows of a seed block a continued campaign still runs (standard library only).

``launch/missing_rows.py`` loads this file by its path, so that ``launch/campaign.sh`` can
ask it with the Python of a worktree at an older commit whose package predates it.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping, Sequence


def read_records(path: str) -> list[dict[str, Any]]:
  """A study's ``seeds.jsonl``: one record per line; a line that is not JSON is a
  ``ValueError`` naming the file and the line."""
  records = []
  with open(path, encoding="utf-8") as f:
    for number, line in enumerate(f, 1):
      if line.strip():
        try:
          records.append(json.loads(line))
        except json.JSONDecodeError as e:
          raise ValueError(f"{path} line {number} is not JSON ({e}); restore the file "
                           "from git before continuing the campaign") from None
  return records


def missing_entries(records: Sequence[Mapping[str, Any]], entries: Sequence[str],
                    seeds: Iterable[int], references: Iterable[str] = ()) -> list[str]:
  """The sweep entries (``label[=strategy...]``) with a seed of ``seeds`` not yet recorded:
  what a continued campaign still runs of a seed block. When an RL-MBA row is left, the
  ``references`` rows its relative reward reads are run again too (same seeds, same runs)."""
  have = {(r["strategy"], int(r["seed"])) for r in records}
  seeds = list(seeds)
  label = lambda e: e.split("=")[0]
  left = [e for e in entries if any((label(e), s) not in have for s in seeds)]
  if any(label(e).startswith("rlmba") for e in left):
    refs = set(references)
    left = [e for e in entries if e in left or label(e) in refs]
  return left
