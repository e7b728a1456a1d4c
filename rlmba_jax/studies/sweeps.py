"""Many runs of one config: entries x seeds as resumable subprocesses (sweeps and searches).

``rlmba_jax.sweep`` (the comparison) and ``rlmba_jax.tune`` (the search on validation) plan
their runs with ``parse_entry`` / ``plan_seed_runs`` and execute them with ``run_jobs``:
``python -m rlmba_jax.main`` runs on their own workdirs (log in ``log.txt`` there),
``workers`` processes at a time, or with one worker one after the other in this process;
finished runs skipped and interrupted ones continued. Every run shares one persistent XLA
compilation cache, so only the first run of a config compiles, and in this process a run
also reuses the traced programs of the runs before it.

An entry's seeds run as seed-batched runs (``experiment.seeds``) on in-memory data sets:
blocks of at most ``seeds_per_program`` seeds, each one run in ``ENTRY/seeds_A-B/`` whose
seeds' outputs are in ``seed_NNNN/``; record data sets (and ``batch_seeds=False``) run one
seed per run in ``ENTRY/seed<k>/``. ``seed_run_folders`` finds a seed's run in either
layout, so readers need not know which was used.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import subprocess
import sys
import time
from typing import Iterable, Iterator, NamedTuple, Sequence

from rlmba_jax import compilation_cache
from rlmba_jax.experiment.progress import progress_wanted


# The default persistent compilation cache of sweeps (a per-user folder).
DEFAULT_COMPILE_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "rlmba_jax", "xla")


class Job(NamedTuple):
  command: list[str]
  workdir: str
  seed_rounds: int = 1  # seeds x rounds it computes (the progress bar's unit)


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
  """True when ``workdir`` holds a summary of at least ``rounds`` selection rounds (a
  seed-batched workdir's summary covers all its seeds)."""
  path = os.path.join(workdir, "summary.json")
  if not os.path.exists(path):
    return False
  with open(path) as f:
    return json.load(f).get("rounds", -1) >= rounds


def plan_run(config_arg: str, workdir: str, strategy: str, seed: int,
             overrides: dict[str, str], common: Iterable[str] = (),
             seeds: Sequence[int] | None = None, vmap_width: int | None = None,
             rounds: int = 1) -> Job:
  """The command of one run: ``--config`` plus strategy, seed (or ``seeds``: a
  seed-batched run), the entry's overrides and the ``--config.*`` flags common to every
  run (given last, so they win)."""
  cmd = [sys.executable, "-m", "rlmba_jax.main", f"--config={config_arg}",
         f"--workdir={workdir}", f"--config.al.strategy={strategy}"]
  if seeds is None:
    cmd.append(f"--config.seed={seed}")
  else:
    cmd.append(f"--seeds={seed_list_text(seeds)}")
    if vmap_width is not None:
      cmd.append(f"--vmap_width={vmap_width}")
  cmd += [f"--config.{k}={v}" for k, v in overrides.items()]
  cmd += list(common)
  return Job(cmd, workdir, (len(seeds) if seeds is not None else 1) * (rounds + 1))


def seed_list_text(seeds: Sequence[int]) -> str:
  """``0-49`` for a run of consecutive seeds, else ``0,3,7``."""
  seeds = list(seeds)
  if len(seeds) > 1 and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
    return f"{seeds[0]}-{seeds[-1]}"
  return ",".join(str(s) for s in seeds)


def block_name(seeds: Sequence[int]) -> str:
  """The folder of a seed block: ``seeds_0000-0049`` (``seeds_0003-0017_n5`` when the
  seeds are not consecutive)."""
  seeds = list(seeds)
  name = f"seeds_{seeds[0]:04d}-{seeds[-1]:04d}"
  if seeds != list(range(seeds[0], seeds[-1] + 1)):
    name += f"_n{len(seeds)}"
  return name


def seed_run_folders(entry_dir: str) -> dict[int, str]:
  """``{seed: folder}`` of every seed's run under an entry's folder: single runs in
  ``seed<k>/``, seed-batched blocks in ``<block>/seed_NNNN/`` (a block is a folder with
  ``seeds.json``); or of one seed-batched workdir given itself."""
  found: dict[int, str] = {}
  if not os.path.isdir(entry_dir):
    return found
  if os.path.exists(os.path.join(entry_dir, "seeds.json")):  # one seed-batched workdir
    return {int(sub[5:]): os.path.join(entry_dir, sub)
            for sub in sorted(os.listdir(entry_dir)) if re.fullmatch(r"seed_\d+", sub)}
  for name in sorted(os.listdir(entry_dir)):
    path = os.path.join(entry_dir, name)
    if re.fullmatch(r"seed\d+", name) and os.path.isdir(path):
      found.setdefault(int(name[4:]), path)
    elif os.path.exists(os.path.join(path, "seeds.json")):
      for sub in sorted(os.listdir(path)):
        if re.fullmatch(r"seed_\d+", sub):
          found.setdefault(int(sub[5:]), os.path.join(path, sub))
  return found


def plan_seed_runs(config_arg: str, entry_dir: str, strategy: str, seeds: Sequence[int],
                   overrides: dict[str, str], common: Iterable[str], rounds: int, *,
                   batch_seeds: bool = True, seeds_per_program: int = 0,
                   vmap_width: int | None = None) -> list[Job]:
  """The runs an entry still needs for ``seeds``: nothing for a seed whose run (in either
  layout) has finished; an unfinished seed block is continued with its own seeds; the
  other seeds go into new blocks of at most ``seeds_per_program`` (0: one block), or one
  run each without ``batch_seeds``."""
  done = {s for s, folder in seed_run_folders(entry_dir).items()
          if is_finished(folder, rounds)}
  todo = [s for s in seeds if s not in done]
  jobs = []
  if not batch_seeds:
    return [plan_run(config_arg, os.path.join(entry_dir, f"seed{s}"), strategy, s,
                     overrides, common, rounds=rounds) for s in todo]
  if os.path.isdir(entry_dir):  # interrupted blocks: continue each with its own seeds
    for name in sorted(os.listdir(entry_dir)):
      path = os.path.join(entry_dir, name)
      if not os.path.exists(os.path.join(path, "seeds.json")) or is_finished(path, rounds):
        continue
      with open(os.path.join(path, "seeds.json")) as f:
        block = [int(s) for s in json.load(f)["seeds"]]
      if any(s in todo for s in block):
        jobs.append(plan_run(config_arg, path, strategy, block[0], overrides, common,
                             seeds=block, vmap_width=None, rounds=rounds))
        todo = [s for s in todo if s not in block]
  size = seeds_per_program if seeds_per_program > 0 else max(len(todo), 1)
  for i in range(0, len(todo), size):
    block = todo[i:i + size]
    jobs.append(plan_run(config_arg, os.path.join(entry_dir, block_name(block)), strategy,
                         block[0], overrides, common, seeds=block, vmap_width=vmap_width,
                         rounds=rounds))
  return jobs


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


def config_from_arguments(args: Sequence[str], with_seeds: bool = False):
  """``(config, workdir)`` from ``rlmba_jax.main``'s arguments, parsed as it parses them
  (``--config=FILE[:ARG]`` or a packaged name, ``--config.KEY=VALUE``, ``--workdir``,
  ``--seeds``, ``--vmap_width``); a ``ConfigError`` (exit code 2, as the command's) for
  arguments it would refuse. ``with_seeds``: ``(config, workdir, seeds, vmap_width)``."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top

  from rlmba_jax import config_names  # pylint: disable=g-import-not-at-top
  from rlmba_jax.errors import ConfigError  # pylint: disable=g-import-not-at-top
  argv = ["rlmba_jax.main", *args]
  values = flags.FlagValues()
  try:
    config_names.resolve_config_names(argv)
    config_flags.DEFINE_config_file("config", None, "Config file.", flag_values=values,
                                    lock_config=True, sys_argv=argv)
    flags.DEFINE_string("workdir", None, "Output folder.", flag_values=values)
    flags.DEFINE_string("seeds", None, "Seeds in lockstep.", flag_values=values)
    flags.DEFINE_integer("vmap_width", None, "Seeds vectorised together.",
                         flag_values=values)
    values(argv)
  except SyntaxError as e:
    raise ConfigError(config_names.syntax_error_line(e)) from e
  except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as e:
    raise ConfigError(f"error in the config ({' '.join(args)}): {e}") from e
  problem = config_names.config_file_problem(values["config"].value,
                                             values["config"].config_filename)
  if problem:
    raise ConfigError(problem)
  if with_seeds:
    return (values["config"].value, values["workdir"].value, values["seeds"].value,
            values["vmap_width"].value)
  return values["config"].value, values["workdir"].value


def _run_in_process(job: Job, on_round=None) -> tuple[str, int, float]:
  """The job's ``rlmba_jax.main`` run called in this process, its output (log lines,
  prints, a traceback) in ``log.txt`` and not on the console; the exit code is the one the
  command would give (``errors.EXIT_CODES``, 1 for anything else)."""
  import contextlib  # pylint: disable=g-import-not-at-top
  import logging  # pylint: disable=g-import-not-at-top
  import traceback  # pylint: disable=g-import-not-at-top

  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top

  from rlmba_jax import errors  # pylint: disable=g-import-not-at-top
  from rlmba_jax.experiment import run
  from rlmba_jax.experiment.logs import configure_logging  # pylint: disable=g-import-not-at-top
  from rlmba_jax.experiment.seeds import parse_seeds  # pylint: disable=g-import-not-at-top
  from rlmba_jax.experiment.summary import finished_line  # pylint: disable=g-import-not-at-top
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
          config, workdir, seeds, width = config_from_arguments(main_arguments(job), True)
          count = len(parse_seeds(seeds)) if seeds else 1
          done = (lambda r, phase: on_round(count) if phase == "reported" else None
                  ) if on_round is not None else None
          print(finished_line(run(config, workdir, seeds=seeds, vmap_width=width,
                                  phase_callback=done), workdir))
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
  runs before it (``experiment.start.make_trainer``) and pays no interpreter start; the
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
  sizes = {job.workdir: job.seed_rounds for p in phases for job in p}
  bar = _runs_bar(sum(sizes.values()), progress)
  shown: dict[str, int] = {}  # seed-rounds shown on the bar per run, as they finish

  def on_round(workdir):
    def advance(count):
      shown[workdir] = shown.get(workdir, 0) + count
      bar.update(count)
    return advance if bar is not None else None

  failed = []
  try:
    for phase in phases:
      for workdir, rc, seconds in _finished_runs(phase, workers, env, in_process, on_round):
        line = json.dumps({"run": workdir, "exit": rc, "seconds": round(seconds, 1)})
        if rc:
          failed.append(workdir)
        if bar is None:
          print(line, flush=True)
        else:
          bar.write(line, file=sys.stdout)
          bar.update(max(0, sizes.get(workdir, 1) - shown.get(workdir, 0)))  # run over
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
                   in_process: bool, on_round=lambda workdir: None
                   ) -> Iterator[tuple[str, int, float]]:
  """``(workdir, exit code, seconds)`` of each job as it finishes. In this process the
  jobs run on the main thread, so Ctrl-C stops the current run as it stops a command
  (``on_round(workdir)``: a callback of the seed-rounds a run has just finished)."""
  if in_process:
    for job in phase:
      yield (_run_in_process(job, on_round(job.workdir)) if main_arguments(job) is not None
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
  return tqdm(total=total, unit="seed-round", desc="sweep", file=sys.stderr,
              dynamic_ncols=True)
