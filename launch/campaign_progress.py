r"""Where a campaign stands: for each sweep folder, each row's seed blocks, finished or how
many rounds their seeds have, read from the run folders alone (nothing is run or changed).

  python launch/campaign_progress.py runs/campaign            # every sweep folder in it
  python launch/campaign_progress.py runs/campaign/av_digits  # one sweep

A block is ``finished`` when its ``summary.json`` is written (the run's last step), else
``round k`` where k is the fewest rounds any of its seeds has recorded (``rounds.jsonl``
lines less the initial round), or ``started`` before the first line.
"""

from __future__ import annotations

import os
import sys


def block_state(block_dir: str) -> str:
  """``finished``, ``round k`` or ``started`` for a seed block's (or a single run's) folder."""
  if os.path.exists(os.path.join(block_dir, "summary.json")):
    return "finished"
  seed_dirs = sorted(d for d in os.listdir(block_dir) if d.startswith("seed_"))
  counts = []
  for d in seed_dirs or ["."]:
    path = os.path.join(block_dir, d, "rounds.jsonl")
    if not os.path.exists(path):
      counts.append(0)
      continue
    with open(path) as f:
      counts.append(sum(1 for line in f if line.strip()))
  done = min(counts) if counts else 0
  return f"round {done - 1}" if done > 0 else "started"


def sweep_progress(sweep_dir: str) -> dict[str, dict[str, str]]:
  """``{row: {block folder: state}}`` of a sweep folder (``<sweep>/runs/<row>/<block>``)."""
  runs = os.path.join(sweep_dir, "runs")
  progress: dict[str, dict[str, str]] = {}
  for row in sorted(os.listdir(runs)) if os.path.isdir(runs) else []:
    row_dir = os.path.join(runs, row)
    if not os.path.isdir(row_dir):
      continue
    blocks = sorted(b for b in os.listdir(row_dir) if os.path.isdir(os.path.join(row_dir, b)))
    progress[row] = {b: block_state(os.path.join(row_dir, b)) for b in blocks}
  return progress


def describe(blocks: dict[str, str]) -> str:
  """``seeds 1000-1029 finished (3 blocks); seeds_1030-1039 round 2`` for one row."""
  def seeds(name):
    try:
      first, last = name.removeprefix("seeds_").split("-")
      return int(first), int(last)
    except ValueError:
      return None
  parts, run = [], []  # run: contiguous finished blocks [(first, last)]

  def close_run():
    if run:
      parts.append(f"seeds {run[0][0]}-{run[-1][1]} finished ({len(run)} "
                   f"block{'s' if len(run) > 1 else ''})")
      run.clear()

  for name, state in sorted(blocks.items(), key=lambda kv: seeds(kv[0]) or (0, 0)):
    span = seeds(name)
    if state == "finished" and span is not None:
      if run and span[0] != run[-1][1] + 1:
        close_run()
      run.append(span)
    else:
      close_run()
      parts.append(f"{name} {state}")
  close_run()
  return "; ".join(parts)


def sweep_folders(path: str) -> list[str]:
  """``path`` itself when it is a sweep folder (has ``runs/``), else its sweep subfolders."""
  if os.path.isdir(os.path.join(path, "runs")):
    return [path]
  return sorted(os.path.join(path, d) for d in os.listdir(path)
                if os.path.isdir(os.path.join(path, d, "runs")))


def main(argv: list[str]) -> int:
  if len(argv) != 2 or not os.path.isdir(argv[1]):
    print(__doc__.strip().splitlines()[0] + "\nusage: python launch/campaign_progress.py "
          "CAMPAIGN_OR_SWEEP_FOLDER", file=sys.stderr)
    return 2
  folders = sweep_folders(argv[1])
  if not folders:
    print(f"{argv[1]} holds no sweep folder (none has a runs/ folder)", file=sys.stderr)
    return 2
  for folder in folders:
    progress = sweep_progress(folder)
    finished = sum(s == "finished" for row in progress.values() for s in row.values())
    total = sum(len(row) for row in progress.values())
    print(f"{folder}: {finished} of {total} row blocks finished")
    for row, blocks in progress.items():
      print(f"  {row}: {describe(blocks)}")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
