"""Small durable-file helpers for the workdir."""

from __future__ import annotations

import json
import os
from typing import Any, Iterable


def write_atomic(path: str, text: str) -> None:
  """Replaces ``path`` with ``text`` so that readers see the old or the new file, never half."""
  tmp = f"{path}.tmp-{os.getpid()}"
  with open(tmp, "w", encoding="utf-8") as f:
    f.write(text)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def write_npz(path: str, arrays: dict) -> None:
  """Replaces ``path`` with an ``.npz`` of ``arrays`` (atomically, as ``write_atomic``)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  tmp = f"{path}.tmp-{os.getpid()}.npz"
  with open(tmp, "wb") as f:
    np.savez(f, **arrays)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def write_json(path: str, obj: Any) -> None:
  write_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_jsonl(path: str, rows: Iterable[dict]) -> None:
  write_atomic(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def append_line(path: str, line: str) -> None:
  """Appends ``line`` and a newline with one ``write`` and ``fsync`` (durable on return)."""
  fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
  try:
    os.write(fd, (line + "\n").encode())
    os.fsync(fd)
  finally:
    os.close(fd)


def append_jsonl(path: str, row: dict) -> None:
  append_line(path, json.dumps(row, sort_keys=True))
