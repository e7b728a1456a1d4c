"""``benchmark.py --which=seeds``: seed-rounds per second of seed-batched runs against the
same seeds as single runs one after another in one warm process.

For each S of ``--seed_counts``: a warm-up compiles the programs (a two-round run: the
later rounds reuse round 1's programs), then the seeds ``0 .. S-1`` run as one batched run
(``run(config, workdir, seeds=...)``) and as single runs in this process (which reuse their
programs too: ``experiment.start.make_trainer``). Single runs cost the same per run, so at
most ``--single_runs`` of them are timed and their mean is multiplied by S (the row says so).
Peak memory: the process's peak resident set (CPU) or the device's peak bytes in use
(GPU/TPU) after each batched run, per seed above the warm-up's.
"""

from __future__ import annotations

import os
import resource
import shutil
import tempfile
import time

import jax


def _peak_bytes() -> tuple[int, str]:
  stats = jax.devices()[0].memory_stats() if jax.default_backend() != "cpu" else None
  if stats and "peak_bytes_in_use" in stats:
    return int(stats["peak_bytes_in_use"]), "device"
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "host_rss"


def _config(config_arg: str, strategy: str, overrides: dict):
  from rlmba_jax import config_names  # pylint: disable=g-import-not-at-top
  from rlmba_jax.studies.sweeps import config_from_arguments  # pylint: disable=g-import-not-at-top
  del config_names
  args = [f"--config={config_arg}", "--workdir=unused", f"--config.al.strategy={strategy}",
          "--config.eval.progress=off"] + [f"--config.{k}={v}" for k, v in overrides.items()]
  config, _ = config_from_arguments(args)
  return config


def seeds_workload(config_arg: str, strategy: str, seed_counts, vmap_width, single_runs: int,
                   overrides: dict, root: str | None = None):
  """One row per S (see the module docstring)."""
  from rlmba_jax.experiment import run  # pylint: disable=g-import-not-at-top
  root = root or tempfile.mkdtemp(prefix="rlmba_seeds_bench_")
  config = _config(config_arg, strategy, overrides)
  rounds = config.al.rounds
  short = config.copy_and_resolve_references()
  short.al.rounds = min(1, rounds)
  t0 = time.perf_counter()
  run(short, os.path.join(root, "warm_single"))
  warm_single = time.perf_counter() - t0
  singles = []
  for seed in range(max(seed_counts) if single_runs <= 0 else min(max(seed_counts),
                                                                   single_runs)):
    one = config.copy_and_resolve_references()
    one.seed = seed
    t0 = time.perf_counter()
    run(one, os.path.join(root, f"single_{seed}"))
    singles.append(time.perf_counter() - t0)
  per_single = sum(singles) / len(singles)
  rows = []
  for count in seed_counts:
    before, kind = _peak_bytes()
    t0 = time.perf_counter()
    run(short, os.path.join(root, f"warm_{count}"), seeds=range(10000, 10000 + count),
        vmap_width=vmap_width)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    summary = run(config, os.path.join(root, f"batched_{count}"), seeds=range(count),
                  vmap_width=vmap_width)
    batched = time.perf_counter() - t0
    peak, _ = _peak_bytes()
    seed_rounds = count * (rounds + 1)
    single_total = per_single * count
    rows.append(dict(
        workload="seeds", config=config_arg, strategy=strategy, seeds=count,
        vmap_width=summary["vmap_width"], rounds=rounds, batched_s=round(batched, 2),
        batched_seed_rounds_per_s=round(seed_rounds / batched, 3),
        single_runs_timed=len(singles), single_run_s=round(per_single, 2),
        singles_s=round(single_total, 2),
        single_seed_rounds_per_s=round(seed_rounds / single_total, 3),
        speedup=round(single_total / batched, 2),
        batched_warmup_s=round(compile_s, 2), single_warmup_s=round(warm_single, 2),
        peak_memory_kind=kind, peak_mb=round(peak / 2 ** 20, 1),
        peak_growth_per_seed_mb=round(max(0, peak - before) / 2 ** 20 / count, 3),
        device=jax.devices()[0].device_kind, backend=jax.default_backend(),
        num_devices=jax.device_count()))
    shutil.rmtree(os.path.join(root, f"warm_{count}"), ignore_errors=True)
  return rows
