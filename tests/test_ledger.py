import json
import os

import pytest

from rlmba_jax.experiment.ledger import Ledger, LedgerError


def test_append_and_read(tmp_path):
  ledger = Ledger(str(tmp_path / "ledger.jsonl"))
  assert ledger.read() == []
  ledger.append(0, [5, 3, 9])
  ledger.append(1, [1])
  assert [(e["round"], e["ids"]) for e in ledger.read()] == [(0, [5, 3, 9]), (1, [1])]
  with pytest.raises(LedgerError, match="appending round 3"):
    ledger.append(3, [2])


def test_torn_last_line_is_moved_aside_not_lost(tmp_path):
  path = tmp_path / "ledger.jsonl"
  ledger = Ledger(str(path))
  ledger.append(0, [1, 2])
  with open(path, "ab") as f:
    f.write(b'{"round": 1, "ids": [3, ')  # a crash mid-write
  first = path.read_bytes().split(b"\n")[0] + b"\n"
  assert [(e["round"], e["ids"]) for e in ledger.read()] == [(0, [1, 2])]
  assert path.read_bytes() == first and ledger.moved_aside
  torn = [p for p in os.listdir(tmp_path) if ".torn-" in p]
  assert len(torn) == 1 and (tmp_path / torn[0]).read_bytes().startswith(b'{"round": 1')
  ledger.append(1, [3, 4])
  assert [e["round"] for e in ledger.read()] == [0, 1]


def test_damage_inside_the_ledger_is_an_error_and_changes_nothing(tmp_path):
  path = tmp_path / "ledger.jsonl"
  Ledger(str(path)).append(0, [1])  # a valid first line, then damage on line 2
  with open(path, "a") as f:
    f.write('not json\n{"round": 2, "ids": [3]}\n')
  before = path.read_bytes()
  with pytest.raises(LedgerError, match="line 2"):
    Ledger(str(path)).read()
  assert path.read_bytes() == before


def test_rounds_must_be_consecutive(tmp_path):
  path = tmp_path / "ledger.jsonl"
  path.write_text(json.dumps({"round": 1, "ids": [1]}) + "\n")
  with pytest.raises(LedgerError, match="should be round 0"):
    Ledger(str(path)).read()
