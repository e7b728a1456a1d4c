r"""Behaviour unchanged across a refactor: the same runs at two commits, their ledgers and
rounds.jsonl compared byte for byte (timings aside).

  # at the commit before (a worktree), then at the commit after:
  PYTHONPATH=/path/to/before python launch/behaviour_check.py run --out=/tmp/before
  python launch/behaviour_check.py run --out=/tmp/after
  python launch/behaviour_check.py compare /tmp/before /tmp/after

The runs: the mfeat default (the README's main job), ``mfeat:paper`` with margin,
``mfeat:tuned`` (RL-MBA with the committed search's choice), each for ``--rounds`` rounds,
and a person as the oracle (``arrays:person``, a simulated person with skips and noise,
answering three rounds). ``compare`` exits 1 and names the first differing line of any file
that differs once the ``*_seconds`` fields are taken out of rounds.jsonl.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
import tempfile


RUNS = {  # name -> (config, overrides)
    "mfeat_default": ("configs/mfeat.py", []),
    "mfeat_paper_margin": ("configs/mfeat.py:paper", ["--config.al.strategy=margin"]),
    "mfeat_tuned_rlmba": ("configs/mfeat.py:tuned", []),
    "person": ("configs/arrays.py:person", ["--config.al.strategy=margin",
                                            "--config.train.num_epochs=40"]),
}
FILES = ("ledger.jsonl", "rounds.jsonl")


def _config(spec: str, overrides: list[str], rounds: int):
  """``configs/x.py:arg`` with ``--config.a.b=value`` overrides, parsed as the command
  parses them (``sweeps.config_from_arguments``, wherever the checked-out commit has it)."""
  try:
    from rlmba_jax.studies.sweeps import config_from_arguments
  except ImportError:  # a commit before the studies package
    from rlmba_jax.experiment.sweeps import config_from_arguments
  config, _ = config_from_arguments([f"--config={spec}", "--workdir=unused",
                                     f"--config.al.rounds={rounds}", *overrides])
  return config


def run_all(out: str, rounds: int) -> None:
  from rlmba_jax.data.arrays import write_demo_folder
  from rlmba_jax.experiment import loop
  try:
    from rlmba_jax.person import SimulatedPerson
  except ImportError:  # a commit before the person package
    from rlmba_jax.experiment.oracle import SimulatedPerson
  os.makedirs(out, exist_ok=True)
  for name, (spec, overrides) in RUNS.items():
    workdir = os.path.join(out, name)
    if os.path.exists(os.path.join(workdir, "summary.json")):
      continue
    if name == "person":
      data = os.path.join(out, "person_data")
      if not os.path.exists(data):
        write_demo_folder(data)
      config = _config(spec, [*overrides, f"--config.data.manual_dir={data}"], rounds)
      truth = _truth(data)
      person = SimulatedPerson(truth, noise=0.1, skip=0.1, seed=7)
      loop.run(config, workdir, person=person)
    else:
      loop.run(_config(spec, overrides, rounds), workdir)
    print(f"{name}: done", flush=True)


def _truth(folder: str) -> dict[int, str]:
  import csv
  with open(os.path.join(folder, "truth.csv")) as f:
    return {int(row["id"]): row["label"] for row in csv.DictReader(f)}


def without_timings(line: str, ignore=()) -> str:
  """A record line in a canonical form without its ``*_seconds`` timings and the fields
  named in ``ignore`` (``launch/same_records.py`` compares sweeps' runs with it too)."""
  record = json.loads(line)
  return json.dumps({k: v for k, v in record.items()
                     if not k.endswith("_seconds") and k not in ignore}, sort_keys=True)


def compare(before: str, after: str) -> int:
  differ = 0
  for name in RUNS:
    for file in FILES:
      a_path, b_path = (os.path.join(d, name, file) for d in (before, after))
      with open(a_path) as f:
        a = f.read().splitlines()
      with open(b_path) as f:
        b = f.read().splitlines()
      if file == "rounds.jsonl":
        a, b = [without_timings(x) for x in a], [without_timings(x) for x in b]
      same = a == b
      print(f"{name}/{file}: {'identical' if same else 'DIFFERS'} ({len(a)} lines)")
      if not same:
        differ += 1
        print("\n".join(list(difflib.unified_diff(a, b, lineterm="", n=0))[:6]))
  print("behaviour unchanged" if not differ else f"{differ} files differ")
  return 1 if differ else 0


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  sub = parser.add_subparsers(dest="command", required=True)
  r = sub.add_parser("run", help="the runs, into --out")
  r.add_argument("--out", required=True)
  r.add_argument("--rounds", type=int, default=4)
  c = sub.add_parser("compare", help="BEFORE AFTER: the runs' files compared")
  c.add_argument("before")
  c.add_argument("after")
  args = parser.parse_args()
  if args.command == "run":
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp())
    run_all(args.out, args.rounds)
    return 0
  return compare(args.before, args.after)


if __name__ == "__main__":
  sys.exit(main())
