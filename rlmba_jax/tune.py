r"""Chooses the values the paper leaves open on validation only, on tuning seeds.

  python -m rlmba_jax.tune --config=configs/mfeat.py:paper --workdir=runs/mfeat_tune \
      --trials=24 --seeds=100,101,102

Trial 0 is the config as given (the paper's values and our defaults); trials 1.. draw
values from ``--space`` (``key=v1|v2|...;key=...``, default ``DEFAULT_SPACE``: RL-MBA's and
AMCB's open values) without repeats, from ``--search_seed``; ``--grid`` runs every
combination instead; ``--include=other/tuning.json`` adds the values another search chose
(say, another data set's) as one more trial. ``--refine_top=N`` adds a second stage: the N
best trials of the first, each with every combination of ``--refine_space`` (default:
RL-MBA's diversity distance to the nearest labelled example instead of the nearest
centroid). A trial's runs live in a folder named after its values, so a search with more
trials reuses the runs it shares. Each (trial, seed) is a run of ``--strategy`` with
``config.eval.test=False``: the test split never reaches the device, no record holds a test
figure, and this script refuses any run whose config or records say otherwise, so test
cannot be read while choosing. RL-MBA's relative reward reads reference runs of
``--references`` on the same tuning seeds, run here under the same rule.

A trial's score is its mean over seeds of the area under the validation top-1 curve; the
best trial's values are written to ``WORKDIR/tuning.md`` and ``tuning.json`` with every
trial's score and the command that produced them. Runs are resumable and share a
persistent compilation cache, as in ``rlmba_jax.sweep``. Use the tuning seeds for nothing
else: report seeds (0..4) never appear here.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags
from ml_collections import config_flags

from rlmba_jax import config_names
from rlmba_jax.experiment.progress import progress_wanted
from rlmba_jax.studies import command_flags, tuning
from rlmba_jax.studies.command_flags import define_runner_flags


config_names.resolve_or_exit(sys.argv)  # --config=mfeat:paper: the packaged file
_CONFIG = config_flags.DEFINE_config_file("config", config_names.default_config("mfeat") + ":paper",
                                          "Config file.", lock_config=False)
_WORKDIR = flags.DEFINE_string("workdir", None, "Search folder.")
_STRATEGY = flags.DEFINE_string("strategy", "rlmba", "The strategy whose values are chosen.")
_SPACE = flags.DEFINE_string("space", tuning.DEFAULT_SPACE, "key=v1|v2|...;key=...")
_TRIALS = flags.DEFINE_integer("trials", 24, "Trials, the given config included.")
_GRID = flags.DEFINE_bool("grid", False, "Every combination of --space instead of draws.")
_SEEDS = flags.DEFINE_list("seeds", ["100", "101", "102"], "Tuning seeds (never 0..4).")
_SEARCH_SEED = flags.DEFINE_integer("search_seed", 0, "Seed of the draws of values.")
_REFERENCES = flags.DEFINE_list("references", ["gcnal", "badge", "bmmal"],
                                "Strategies whose runs give RL-MBA's relative reward.")
_INCLUDE = flags.DEFINE_list(
    "include", [], "tuning.json files of other searches (e.g. another data set's): each "
    "one's chosen values join the first stage as a trial, scored here like any other.")
_REFINE_TOP = flags.DEFINE_integer(
    "refine_top", 0, "Second stage: the N best trials of the first, the config as given "
    "included, each combined with every value of --refine_space.")
_REFINE_SPACE = flags.DEFINE_string("refine_space", "al.rlmba.diversity=labelled",
                                    "key=v1|v2;... of the second stage.")
_REPORT_SEEDS = flags.DEFINE_list("report_seeds", ["0", "1", "2", "3", "4"],
                                  "Seeds reserved for reports: refused as tuning seeds.")
_RUNNER = define_runner_flags()  # --workers, --compile_cache, --progress, --separate_processes
flags.adopt_module_key_flags(command_flags)  # listed by --helpshort too


def main(argv):
  command_flags.check_command_line(argv, _WORKDIR.value, "the search's runs and report",
                            "python -m rlmba_jax.tune "
                            "--workdir=runs/tune --trials=8 --seeds=100,101,102")
  seeds = [int(s) for s in _SEEDS.value]
  reserved = sorted(set(seeds) & {int(s) for s in _REPORT_SEEDS.value})
  if reserved:
    raise app.UsageError(f"--seeds {reserved} are report seeds; tune on others (100, 101, "
                         "102, ...)")
  common = [a for a in sys.argv[1:] if a.startswith("--config.")]
  if any(a.startswith("--config.eval.test") for a in common):
    raise app.UsageError("the search sets config.eval.test=False itself")
  common.append("--config.eval.test=False")
  try:
    space, trials, refine_combos = _trials()
    for overrides in trials + refine_combos:  # every trial's config valid before any run
      tuning.check_trial(_CONFIG.value, _STRATEGY.value, overrides)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  workdir = os.path.abspath(_WORKDIR.value)
  _run_trials(workdir, seeds, trials, common)
  if refine_combos:
    refined = tuning.refined_trials(workdir, trials, seeds, _REFINE_TOP.value, refine_combos)
    try:
      for overrides in refined:
        tuning.check_trial(_CONFIG.value, _STRATEGY.value, overrides)
    except ValueError as e:
      raise app.UsageError(str(e)) from None
    trials = trials + [t for t in refined if t not in trials]
    _run_trials(workdir, seeds, trials, common)
  command = "python -m rlmba_jax.tune " + " ".join(sys.argv[1:])
  try:
    print(tuning.write_result(workdir, command, _STRATEGY.value, seeds, space, trials))
  except ValueError as e:
    raise app.UsageError(str(e)) from None


def _trials():
  """(the space, the first stage's trials, the refinement's combinations)."""
  space = tuning.parse_space(_SPACE.value)
  trials = tuning.draw_trials(space, _TRIALS.value, _SEARCH_SEED.value, _GRID.value)
  for path in _INCLUDE.value:
    try:
      trials.append(tuning.included_trial(path))
    except (OSError, ValueError, KeyError) as e:
      raise ValueError(f"--include {path}: {e}") from None
  trials = [t for i, t in enumerate(trials) if t not in trials[:i]]
  refine_combos = []
  if _REFINE_TOP.value > 0:
    refine_combos = tuning.draw_trials(tuning.parse_space(_REFINE_SPACE.value), 0, 0, True)[1:]
  return space, trials, refine_combos


def _run_trials(workdir: str, seeds: list[int], trials, common: list[str]) -> None:
  phases = tuning.plan_trial_runs(_RUNNER, _CONFIG.value, flags.FLAGS["config"].config_filename,
                                  workdir, _STRATEGY.value, seeds, trials, _REFERENCES.value,
                                  common)
  if any(phases):
    from rlmba_jax.data import load_dataset  # pylint: disable=g-import-not-at-top
    load_dataset(_CONFIG.value.data, progress=progress_wanted(_RUNNER.progress.value))
    _RUNNER.run_jobs(phases)


def entry_point():
  command_flags.run_command(main, sys.modules[__name__])


if __name__ == "__main__":
  entry_point()
