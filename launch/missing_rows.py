r"""The rows of a seed block that a study's records do not hold yet: what campaign.sh runs.

  python launch/missing_rows.py results/mfeat_paired/seeds.jsonl \
      'margin,rlmba_tuned=rlmba{tuned}' 1030-1039 gcnal,badge,bmmal

Prints the sweep entries (``label[=strategy...]``, comma-separated) with a seed of the block
not recorded, and with them the reference rows an RL-MBA row left reads (its relative
reward needs their runs of the same seeds). Standard library only, so any checkout's Python
runs it: campaign.sh calls it while the rows themselves run at the plan's fixed commit, whose
package may predate ``rlmba_jax.studies.paired_report.missing_entries`` (the same rule;
tests/test_stats.py checks the two agree).
"""

import json
import os
import sys


def missing_rows(records, entries, seeds, references=()):
  have = {(r["strategy"], int(r["seed"])) for r in records}
  label = lambda e: e.split("=")[0]
  left = [e for e in entries if any((label(e), s) not in have for s in seeds)]
  if any(label(e).startswith("rlmba") for e in left):
    refs = set(references)
    left = [e for e in entries if e in left or label(e) in refs]
  return left


def main(argv):
  if len(argv) not in (4, 5):
    sys.exit("usage: missing_rows.py SEEDS_JSONL ENTRIES FIRST-LAST [REFERENCES]")
  path, entries, block = argv[1:4]
  references = argv[4].split(",") if len(argv) == 5 and argv[4] else []
  try:
    first, last = map(int, block.split("-"))
  except ValueError:
    sys.exit(f"missing_rows.py: seed block {block!r} is not FIRST-LAST (1030-1039)")
  records = []
  if os.path.exists(path):
    with open(path) as f:
      for number, line in enumerate(f, 1):
        if line.strip():
          try:
            records.append(json.loads(line))
          except json.JSONDecodeError as e:
            sys.exit(f"missing_rows.py: {path} line {number} is not JSON ({e}); restore "
                     "the file from git before continuing the campaign")
  print(",".join(missing_rows(records, entries.split(","), range(first, last + 1),
                              references)))


if __name__ == "__main__":
  main(sys.argv)
