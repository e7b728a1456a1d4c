"""The flags the sweep and the search share (``rlmba_jax.sweep``, ``rlmba_jax.tune``): how
their runs are run (``RunnerFlags``), and the check of their command lines."""

from __future__ import annotations

import os
import sys
from typing import Any, Iterable, NamedTuple, Sequence

from rlmba_jax.studies.sweeps import DEFAULT_COMPILE_CACHE, Job, plan_seed_runs, run_jobs


class RunnerFlags(NamedTuple):
  """The command-line flags of a script that runs jobs (``define_runner_flags``)."""
  workers: Any
  compile_cache: Any
  progress: Any
  separate_processes: Any
  batch_seeds: Any
  seeds_per_program: Any
  vmap_width: Any

  def seed_runs(self, config, config_arg: str, entry_dir: str, strategy: str,
                seeds: Sequence[int], overrides: dict[str, str], common: Iterable[str]
                ) -> list[Job]:
    """``plan_seed_runs`` with the flags' values (seed blocks only for in-memory data)."""
    from rlmba_jax.data.registry import dataset_info  # pylint: disable=g-import-not-at-top
    batch = self.batch_seeds.value and dataset_info(config.data.name).kind == "arrays"
    return plan_seed_runs(config_arg, entry_dir, strategy, seeds, overrides, common,
                          config.al.rounds, batch_seeds=batch,
                          seeds_per_program=self.seeds_per_program.value,
                          vmap_width=self.vmap_width.value)

  def run_jobs(self, phases: Sequence[Sequence[Job]]) -> list[str]:
    """``run_jobs`` with the flags' values."""
    return run_jobs(phases, self.workers.value, self.compile_cache.value,
                    self.progress.value, self.separate_processes.value)


def check_command_line(argv: Sequence[str], workdir: str | None, what: str,
                       example: str) -> None:
  """A sweep command's arguments: none but flags, and ``--workdir`` given; else one line
  saying what the folder is for, with ``example`` (exit code 2)."""
  from absl import app  # pylint: disable=g-import-not-at-top
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {list(argv[1:])}")
  if not workdir:
    print(f"{os.path.basename(sys.argv[0])} needs --workdir=FOLDER, where {what} go (an "
          f"existing one is continued); e.g. {example}", file=sys.stderr)
    sys.exit(2)


def define_runner_flags() -> RunnerFlags:
  """Defines ``--workers``, ``--compile_cache``, ``--progress`` and ``--separate_processes``
  (``rlmba_jax.sweep``, ``rlmba_jax.tune``)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  return RunnerFlags(
      flags.DEFINE_integer("workers", 0, "Parallel runs (0: one per two cores on CPU, one "
                           "on a GPU or TPU)."),
      flags.DEFINE_string("compile_cache", DEFAULT_COMPILE_CACHE,
                          "Persistent XLA compilation cache shared by the runs ('' = off)."),
      flags.DEFINE_enum("progress", "auto", ["auto", "on", "off"], "A bar over the runs: "
                        "auto shows it in a terminal or a notebook, not under CI."),
      flags.DEFINE_bool("separate_processes", False, "Run each run in its own Python "
                        "process even with one worker (by default one worker runs them in "
                        "this process, reusing compiled programs)."),
      flags.DEFINE_bool("batch_seeds", True, "On in-memory data sets, run an entry's seeds "
                        "as seed-batched runs (blocks of --seeds_per_program) instead of "
                        "one run per seed."),
      flags.DEFINE_integer("seeds_per_program", 0, "At most this many seeds in one "
                           "seed-batched run (0: all of an entry's seeds), to cap memory."),
      flags.DEFINE_integer("vmap_width", None, "Seeds vectorised together in a seed-batched "
                           "run (1: one after another, bit-identical to single runs; 0: "
                           "all); default 1 on a CPU, 0 on a GPU or TPU."))


def list_in_help(*modules) -> None:
  """The flags these modules define listed by ``--help`` / ``--helpshort`` whatever runs
  them: absl lists the main script's own flags, and an installed command's main script is
  its wrapper (``rlmba-sweep``)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  for module in modules:
    for flag in flags.FLAGS.get_key_flags_for_module(module):
      flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)


def run_command(main, module) -> None:
  """absl's ``app.run(main)`` for a sweep command defined in ``module`` (its flags listed
  by ``--helpshort``); Ctrl-C ends it with exit code 130 (``run_jobs`` said what is kept)."""
  from absl import app  # pylint: disable=g-import-not-at-top
  list_in_help(module, sys.modules[__name__])
  try:
    app.run(main)
  except KeyboardInterrupt:
    sys.exit(130)
