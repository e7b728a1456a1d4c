"""Many runs of one config: entries x seeds as resumable subprocesses (sweeps and searches).

``launch/sweep.py`` (the comparison) and ``launch/tune.py`` (the search on validation) plan
their runs with ``parse_entry`` / ``plan_run`` and execute them with ``run_jobs``: one
``python -m rlmba_jax.main`` process per (entry, seed) on its own workdir (log in
``log.txt`` there), ``workers`` at a time, finished runs skipped and interrupted ones
continued. Every process shares one persistent XLA compilation cache, so only the first run
of a config compiles (on mfeat a run drops from about 65 s to about 22 s).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import subprocess
import sys
import time
from typing import Iterable, NamedTuple, Sequence

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


def run_jobs(phases: Sequence[Sequence[Job]], workers: int = 0,
             compile_cache: str = DEFAULT_COMPILE_CACHE, progress: str = "auto"
             ) -> list[str]:
  """Runs the jobs, phase after phase (a phase may read the runs of earlier ones), each
  phase ``workers`` at a time (0: one per two cores). Prints one JSON line per finished
  run, in the order they finish, under a bar over the runs (``progress``: ``"auto"``,
  ``"on"`` or ``"off"``, as ``config.eval.progress``); returns the workdirs of the runs
  that failed."""
  workers = workers or max(1, (os.cpu_count() or 2) // 2)
  env = compile_cache_env(compile_cache)
  total = sum(len(p) for p in phases)
  if not total:
    return []
  print(f"{total} runs to do, {workers} at a time", flush=True)
  bar = _runs_bar(total, progress)
  failed = []
  for phase in phases:
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
      running = [pool.submit(_run_one, job, env) for job in phase]
      for done in concurrent.futures.as_completed(running):
        workdir, rc, seconds = done.result()
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
  if bar is not None:
    bar.close()
  if failed:
    print(f"{len(failed)} runs failed; see log.txt in: {', '.join(failed)}", flush=True)
  return failed


def _runs_bar(total: int, progress: str):
  """A tqdm bar over a sweep's runs on stderr, or None when progress is not wanted."""
  if not progress_wanted(progress):
    return None
  from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top
  return tqdm(total=total, unit="run", desc="sweep", file=sys.stderr, dynamic_ncols=True)
