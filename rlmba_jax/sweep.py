r"""Runs strategies x seeds on one config (resumable, in parallel processes), then a report.

  python -m rlmba_jax.sweep --config=configs/mfeat.py:curves \
      --strategies=random,entropy,badge,bmmal --seeds=3 --workdir=runs/curves

A strategy entry is a registered name, or ``LABEL=NAME/key=value/key=value`` for a variant
(``--strategies=gcn_u=gcnal/al.gcnal.method=uncertaingcn``); with ``--tuned=tuning.json``
(``rlmba_jax.tune``'s output) ``{tuned}`` in an entry stands for the values chosen on
validation (``rlmba_tuned=rlmba{tuned}``). On in-memory data sets an entry's seeds run as
seed-batched runs (``--seeds_per_program`` seeds at most in each, ``--vmap_width``) in
``WORKDIR/runs/<label>/seeds_A-B/``, each seed's outputs in ``seed_NNNN/`` there;
otherwise (or with ``--nobatch_seeds``) each run is ``python -m rlmba_jax.main`` on
``WORKDIR/runs/<label>/seed<k>`` (log in ``log.txt``; with one worker called in this
process, unless ``--separate_processes``);
finished runs are skipped, interrupted ones continue where they stopped. RL-MBA entries
(strategy ``rlmba``) run after the others: their relative reward reads the same-seed runs of
``--references`` in this sweep (the paper's GCNAL, BADGE and BMMAL by default) unless the
entry sets ``al.rlmba.reference_runs`` itself. Then
``WORKDIR/report.md`` is written with ``curves.png``, ``modality_weights.png`` and
``shapley.png``. ``--report_only`` rewrites the report from what is on disk. The runs share
a persistent compilation cache (``--compile_cache``), so only the first run compiles.
"""

import os
import sys

from absl import app, flags
from ml_collections import config_flags

from rlmba_jax import config_names
from rlmba_jax.experiment.progress import progress_wanted
from rlmba_jax.studies import command_flags, comparison, sweeps
from rlmba_jax.studies.command_flags import define_runner_flags


config_names.resolve_or_exit(sys.argv)  # --config=mfeat:paper: the packaged file
_CONFIG = config_flags.DEFINE_config_file("config", config_names.default_config("mfeat"),
                                          "Config file.", lock_config=False)
_STRATEGIES = flags.DEFINE_list("strategies", ["random", "entropy"], "Entries to compare.")
_SEEDS = flags.DEFINE_integer("seeds", 3, "How many seeds: first_seed .. first_seed + N - 1.")
_SEED_LIST = flags.DEFINE_string("seed_list", "", "The seeds as a list or ranges (1000-1049); "
                                 "overrides --seeds and --first_seed.")
_FIRST_SEED = flags.DEFINE_integer("first_seed", 0, "The first seed.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Sweep folder.")
_REPORT_ONLY = flags.DEFINE_bool("report_only", False, "Only rewrite the report.")
_FULL_DATA = flags.DEFINE_float("full_data", None, "Full-data test top-1 drawn as a line.")
_TITLE = flags.DEFINE_string("title", "Active-learning comparison", "Report title.")
_REFERENCES = flags.DEFINE_list("references", ["gcnal", "badge", "bmmal"],
                                "Labels whose runs give RL-MBA's relative reward.")
_TUNED = flags.DEFINE_string(
    "tuned", "", "tuning.json of rlmba_jax.tune: '{tuned}' in an entry becomes its chosen "
    "values ('rlmba_tuned=rlmba{tuned}' -> 'rlmba_tuned=rlmba/al.rlmba.beta=0.25/...').")
_READING = flags.DEFINE_string(
    "reading", "", "A markdown file (the analysis of the figures) appended to report.md.")
_RUNNER = define_runner_flags()  # --workers, --compile_cache, --progress, --separate_processes
flags.adopt_module_key_flags(command_flags)  # listed by --helpshort too


def main(argv):
  command_flags.check_command_line(argv, _WORKDIR.value, "the sweep's runs and report",
                            "python -m rlmba_jax.sweep "
                            "--workdir=runs/sweep --strategies=random,margin --seeds=3")
  config, config_arg = _CONFIG.value, flags.FLAGS["config"].config_filename
  seeds = _seeds()
  # Flags given to this script as --config.x=y apply to every run.
  common = [a for a in sys.argv[1:] if a.startswith("--config.")]
  runs_dir = os.path.abspath(os.path.join(_WORKDIR.value, "runs"))
  try:
    entries = comparison.expand_entries(_STRATEGIES.value, _TUNED.value)
    phases = comparison.plan_runs(_RUNNER, config, config_arg, entries, seeds,
                                  _REFERENCES.value, runs_dir, common)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  if not _REPORT_ONLY.value and any(phases):
    # Build (or check) the data set once here, so parallel runs never build it together.
    from rlmba_jax.data import load_dataset  # pylint: disable=g-import-not-at-top
    load_dataset(config.data, progress=progress_wanted(_RUNNER.progress.value))
    _RUNNER.run_jobs(phases)
  notes = (f"Config `{config_arg}`" + "".join(f" `{a}`" for a in common)
           + f", seeds {sweeps.seed_list_text(seeds)}.")
  print(comparison.write_report(_WORKDIR.value, config, [e[0] for e in entries], seeds, notes,
                                _TITLE.value, _FULL_DATA.value, _READING.value))


def _seeds() -> list[int]:
  if not _SEED_LIST.value:
    return list(range(_FIRST_SEED.value, _FIRST_SEED.value + _SEEDS.value))
  from rlmba_jax.experiment.seeds import parse_seeds  # pylint: disable=g-import-not-at-top
  try:
    return list(parse_seeds(_SEED_LIST.value))
  except ValueError as e:
    raise app.UsageError(f"--seed_list: {e}") from None


def entry_point():
  command_flags.run_command(main, sys.modules[__name__])


if __name__ == "__main__":
  entry_point()
