r"""The rows of a seed block that a study's records do not hold yet: what campaign.sh runs.

  python launch/missing_rows.py results/mfeat_paired/seeds.jsonl \
      'margin,rlmba_tuned=rlmba{tuned}' 1030-1039 gcnal,badge,bmmal

Prints the sweep entries (``label[=strategy...]``, comma-separated) with a seed of the block
not recorded, and with them the reference rows an RL-MBA row left reads (its relative
reward needs their runs of the same seeds): ``rlmba_jax.studies.rows_left``, read from
this checkout by its path, so any checkout's Python runs it. campaign.sh calls it while the
rows themselves run at the plan's fixed commit, whose package may predate that module.
"""

import importlib.util
import os
import sys

# rlmba_jax/studies/rows_left.py of this checkout, by its path: the Python running this may
# belong to a worktree whose package predates it.
_spec = importlib.util.spec_from_file_location(
    "rows_left", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "rlmba_jax",
                              "studies", "rows_left.py"))
_rows_left = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_rows_left)


def main(argv):
  if len(argv) not in (4, 5):
    sys.exit("usage: missing_rows.py SEEDS_JSONL ENTRIES FIRST-LAST [REFERENCES]")
  path, entries, block = argv[1:4]
  references = argv[4].split(",") if len(argv) == 5 and argv[4] else []
  try:
    first, last = map(int, block.split("-"))
  except ValueError:
    sys.exit(f"missing_rows.py: seed block {block!r} is not FIRST-LAST (1030-1039)")
  try:
    records = _rows_left.read_records(path) if os.path.exists(path) else []
  except ValueError as e:
    sys.exit(f"missing_rows.py: {e}")
  print(",".join(_rows_left.missing_entries(records, entries.split(","), range(first, last + 1),
                              references)))


if __name__ == "__main__":
  main(sys.argv)
