"""Many runs of one config: entries x seeds as resumable subprocesses (sweeps and searches).

``launch/sweep.py`` (the comparison) and ``launch/tune.py`` (the search on validation) plan
their runs with ``parse_entry`` / ``plan_run`` and execute them with ``run_jobs``: one
``python -m rlmba_jax.main`` run per (entry, seed) on its own workdir (log in ``log.txt``
there), ``workers`` processes at a time, or with one worker one after the other in this
process; finished runs skipped and interrupted ones continued. Every run shares one
persistent XLA compilation cache, so only the first run of a config compiles (on mfeat a
run drops from about 65 s to about 22 s), and in this process a run also reuses the traced
programs of the runs before it.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import subprocess
import sys
import time
from typing import Any, Iterable, Iterator, NamedTuple, Sequence

from rlmba_jax import compilation_cache
from rlmba_jax.experiment.progress import progress_wanted

# The default persistent compilation cache of sweeps (a per-user folder).
DEFAULT_COMPILE_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "rlmba_jax", "xla")


class Job(NamedTuple):
  command: list[str]
  workdir: str


_KEY = re.compile(r"^[A-Za-z_]\w*(\.\w+)+=")


def parse_entry(entry: str) -> tuple[str, str, dict[str, str]]:
  """``"lbl=name/k=v/k=v"`` -> (label, strategy, overrides); ``"name"`` -> (name, name, {}).

  A value may hold ``/`` (a path: ``.../al.rlmba.init_from=/runs/pretrain/mfeat``): a piece
  that does not start with a dotted ``key=`` belongs to the value before it.
  """
  if "=" not in entry.split("/")[0]:
    label, rest = entry, entry
  else:
    label, rest = entry.split("=", 1)
  strategy, *pieces = rest.split("/")
  pairs: list[str] = []
  for piece in pieces:
    if pairs and not _KEY.match(piece) and "=" in pairs[-1]:
      pairs[-1] += "/" + piece
    else:
      pairs.append(piece)
  overrides = {}
  for pair in pairs:
    if "=" not in pair:
      raise ValueError(f"--strategies entry {entry!r}: {pair!r} is not key=value")
    key, value = pair.split("=", 1)
    overrides[key] = value
  return label, strategy, overrides


def is_finished(workdir: str, rounds: int) -> bool:
  """True when ``workdir`` holds a summary of at least ``rounds`` selection rounds."""
  path = os.path.join(workdir, "summary.json")
  if not os.path.exists(path):
    return False
  with open(path) as f:
    return json.load(f).get("rounds", -1) >= rounds


def plan_run(config_arg: str, workdir: str, strategy: str, seed: int,
             overrides: dict[str, str], common: Iterable[str] = ()) -> Job:
  """The command of one run: ``--config`` plus strategy, seed, the entry's overrides and
  the ``--config.*`` flags common to every run (given last, so they win)."""
  cmd = [sys.executable, "-m", "rlmba_jax.main", f"--config={config_arg}",
         f"--workdir={workdir}", f"--config.al.strategy={strategy}", f"--config.seed={seed}"]
  cmd += [f"--config.{k}={v}" for k, v in overrides.items()]
  cmd += list(common)
  return Job(cmd, workdir)


def compile_cache_env(cache_dir: str) -> dict[str, str]:
  """The environment of a run that shares the persistent compilation cache ``cache_dir``
  (every program cached, however quick to compile); ``""``: the caller's environment."""
  env = dict(os.environ)
  if cache_dir:
    os.makedirs(cache_dir, exist_ok=True)
    env.setdefault("JAX_COMPILATION_CACHE_DIR", cache_dir)
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
  return env


def _run_one(job: Job, env: dict[str, str]) -> tuple[str, int, float]:
  os.makedirs(job.workdir, exist_ok=True)
  t0 = time.time()
  with open(os.path.join(job.workdir, "log.txt"), "a") as log:
    rc = subprocess.call(job.command, stdout=log, stderr=subprocess.STDOUT, env=env)
  return job.workdir, rc, time.time() - t0


def main_arguments(job: Job) -> list[str] | None:
  """The arguments of a job that runs ``python -m rlmba_jax.main``, else None."""
  if job.command[1:3] == ["-m", "rlmba_jax.main"]:
    return job.command[3:]
  return None


def config_from_arguments(args: Sequence[str]):
  """``(config, workdir)`` from ``rlmba_jax.main``'s arguments, parsed as it parses them
  (``--config=FILE[:ARG]`` or a packaged name, ``--config.KEY=VALUE``, ``--workdir``); a
  ``ConfigError`` (exit code 2, as the command's) for arguments it would refuse."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  from rlmba_jax import config_names  # pylint: disable=g-import-not-at-top
  from rlmba_jax.experiment.errors import ConfigError  # pylint: disable=g-import-not-at-top
  argv = ["rlmba_jax.main", *args]
  values = flags.FlagValues()
  try:
    config_names.resolve_config_names(argv)
    config_flags.DEFINE_config_file("config", None, "Config file.", flag_values=values,
                                    lock_config=True, sys_argv=argv)
    flags.DEFINE_string("workdir", None, "Output folder.", flag_values=values)
    values(argv)
  except SyntaxError as e:
    raise ConfigError(config_names.syntax_error_line(e)) from e
  except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as e:
    raise ConfigError(f"error in the config ({' '.join(args)}): {e}") from e
  problem = config_names.config_file_problem(values["config"].value,
                                             values["config"].config_filename)
  if problem:
    raise ConfigError(problem)
  return values["config"].value, values["workdir"].value


def _run_in_process(job: Job) -> tuple[str, int, float]:
  """The job's ``rlmba_jax.main`` run called in this process, its output (log lines,
  prints, a traceback) in ``log.txt`` and not on the console; the exit code is the one the
  command would give (``errors.EXIT_CODES``, 1 for anything else)."""
  import contextlib  # pylint: disable=g-import-not-at-top
  import logging  # pylint: disable=g-import-not-at-top
  import traceback  # pylint: disable=g-import-not-at-top
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  from rlmba_jax.experiment import errors, run  # pylint: disable=g-import-not-at-top
  from rlmba_jax.experiment.loop import finished_line  # pylint: disable=g-import-not-at-top
  from rlmba_jax.experiment.logs import configure_logging  # pylint: disable=g-import-not-at-top
  configure_logging()  # as the command: our lines at INFO, libraries' at WARNING
  os.makedirs(job.workdir, exist_ok=True)
  t0 = time.time()
  root = logging.getLogger()
  consoles = [(h, h.level) for h in root.handlers]  # absl's, or basicConfig's
  with open(os.path.join(job.workdir, "log.txt"), "a") as log:
    to_file = logging.StreamHandler(log)
    to_file.setFormatter(absl_logging.PythonFormatter())
    for handler, _ in consoles:
      handler.setLevel(logging.CRITICAL + 1)
    root.addHandler(to_file)
    try:
      with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        try:
          config, workdir = config_from_arguments(main_arguments(job))
          print(finished_line(run(config, workdir), workdir))
          rc = 0
        except (errors.ConfigError, errors.RunError) as e:
          traceback.print_exc()
          rc = e.exit_code
        except Exception:  # pylint: disable=broad-except  (one failed run, not the sweep)
          traceback.print_exc()
          rc = 1
    finally:
      root.removeHandler(to_file)
      for handler, level in consoles:
        handler.setLevel(level)
  return job.workdir, rc, time.time() - t0


def run_jobs(phases: Sequence[Sequence[Job]], workers: int = 0,
             compile_cache: str = DEFAULT_COMPILE_CACHE, progress: str = "auto",
             separate_processes: bool = False) -> list[str]:
  """Runs the jobs, phase after phase (a phase may read the runs of earlier ones), each
  phase ``workers`` at a time (0: ``default_workers()``). Prints one JSON line per finished
  run, in the order they finish, under a bar over the runs (``progress``: ``"auto"``,
  ``"on"`` or ``"off"``, as ``config.eval.progress``); returns the workdirs of the runs
  that failed.

  With one worker, the ``rlmba_jax.main`` jobs run one after the other in this process
  (unless ``separate_processes``), so a run reuses the traced and compiled programs of the
  runs before it (``experiment.loop.make_trainer``) and pays no interpreter start; the
  results are the same as from separate processes (tests/test_sweeps.py).
  """
  workers = workers or default_workers()
  env = compile_cache_env(compile_cache)
  if workers > 1:  # processes sharing an accelerator take memory as they need it
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
  total = sum(len(p) for p in phases)
  if not total:
    return []
  in_process = workers == 1 and not separate_processes
  print(f"{total} runs to do, {workers} at a time"
        + (", in this process" if in_process else ""), flush=True)
  if in_process and compile_cache:  # every program kept, as compile_cache_env sets it up
    compilation_cache.enable(folder=compile_cache)
  bar = _runs_bar(total, progress)
  failed = []
  try:
    for phase in phases:
      for workdir, rc, seconds in _finished_runs(phase, workers, env, in_process):
        line = json.dumps({"run": workdir, "exit": rc, "seconds": round(seconds, 1)})
        if rc:
          failed.append(workdir)
        if bar is None:
          print(line, flush=True)
        else:
          bar.write(line, file=sys.stdout)
          bar.update(1)
          bar.set_postfix(last="/".join(workdir.split(os.sep)[-2:]), failed=len(failed),
                          refresh=True)
  except KeyboardInterrupt:
    print("interrupted: finished runs are kept, and a stopped one continues from its last "
          "finished round; run the same command to go on", file=sys.stderr, flush=True)
    raise
  finally:
    if bar is not None:
      bar.close()
  if failed:
    print(f"{len(failed)} runs failed; see log.txt in: {', '.join(failed)}", flush=True)
  return failed


class RunnerFlags(NamedTuple):
  """The command-line flags of a script that runs jobs (``define_runner_flags``)."""
  workers: Any
  compile_cache: Any
  progress: Any
  separate_processes: Any

  def run_jobs(self, phases: Sequence[Sequence[Job]]) -> list[str]:
    """``run_jobs`` with the flags' values."""
    return run_jobs(phases, self.workers.value, self.compile_cache.value,
                    self.progress.value, self.separate_processes.value)


def define_runner_flags() -> RunnerFlags:
  """Defines ``--workers``, ``--compile_cache``, ``--progress`` and ``--separate_processes``
  (``launch/sweep.py``, ``launch/tune.py``)."""
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
                        "this process, reusing compiled programs)."))


def default_workers() -> int:
  """Runs at a time when ``--workers=0``: one per two CPU cores on CPU; one on a GPU or TPU,
  where runs then go one after the other in this process, which owns the accelerator
  (parallel processes would each claim most of its memory).

  The backend is asked in a short-lived process, so this one holds no accelerator memory
  when its runs go to processes of their own.
  """
  probe = subprocess.run(
      [sys.executable, "-c", "import jax; print(jax.default_backend())"],
      capture_output=True, text=True, timeout=300,
      env=dict(os.environ, XLA_PYTHON_CLIENT_PREALLOCATE="false"))
  lines = probe.stdout.split()
  if probe.returncode == 0 and lines and lines[-1] != "cpu":
    return 1
  return max(1, (os.cpu_count() or 2) // 2)


def _finished_runs(phase: Sequence[Job], workers: int, env: dict[str, str],
                   in_process: bool) -> Iterator[tuple[str, int, float]]:
  """``(workdir, exit code, seconds)`` of each job as it finishes. In this process the
  jobs run on the main thread, so Ctrl-C stops the current run as it stops a command."""
  if in_process:
    for job in phase:
      yield (_run_in_process(job) if main_arguments(job) is not None
             else _run_one(job, env))
    return
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    running = [pool.submit(_run_one, job, env) for job in phase]
    for done in concurrent.futures.as_completed(running):
      yield done.result()


def _runs_bar(total: int, progress: str):
  """A tqdm bar over a sweep's runs on stderr, or None when progress is not wanted."""
  if not progress_wanted(progress):
    return None
  from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top
  return tqdm(total=total, unit="run", desc="sweep", file=sys.stderr, dynamic_ncols=True)
