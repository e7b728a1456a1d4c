"""What a run reports: the area under its learning curve, one line per round, its
``summary.json`` (a single run's, a seed-batched run's), and the line a finished run prints."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import ml_collections
import numpy as np

from rlmba_jax.experiment import stopping
from rlmba_jax.experiment.progress import RunProgress
from rlmba_jax.experiment.seeds import SeedBatch, seed_folder


logger = logging.getLogger(__name__)


def area_under_curve(num_labeled: list[int], top1: list[float]) -> float:
  """Trapezoidal area under test top-1 vs labels, divided by the label range (in [0, 1])."""
  if len(num_labeled) < 2:
    return float(top1[0]) if top1 else float("nan")
  x, y = np.asarray(num_labeled, float), np.asarray(top1, float)
  return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2) / (x[-1] - x[0]))


def finished_line(summary: dict[str, Any], workdir: str) -> str:
  """The one line a finished run prints: strategy, seed, final top-1, labels, workdir."""
  if "seeds" in summary:
    counts = summary["num_labeled"]
    final = (f"mean test top-1 {summary['mean_test_top1'][-1]:.4f}"
             if "mean_test_top1" in summary else "validation only")
    return (f"done: {summary['strategy']} seeds {seed_text(summary['seeds'])}: {final} "
            f"with {counts[-1] if counts else 0} labels; outputs in "
            f"{os.path.join(workdir, 'seed_NNNN')}")
  final = summary["final"]
  metric = "test" if "test_top1" in final else "val"
  return (f"done: {summary['strategy']} seed {summary['seed']}: {metric} top-1 "
          f"{final.get(f'{metric}_top1', float('nan')):.4f} with "
          f"{final.get('num_labeled', 0)} labels; outputs in {workdir}")


def seed_text(seeds) -> str:
  seeds = list(seeds)
  if seeds and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
    return f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else str(seeds[0])
  return ",".join(str(s) for s in seeds)


def log_round(config: ml_collections.ConfigDict, records: list[dict[str, Any]],
               bars: RunProgress) -> None:
  """One line per round (the seeds' means and summed times in a seed-batched run): in the
  log, or above the progress bars when they are shown."""
  record = records[0]
  mean = lambda key: float(np.mean([r[key] for r in records]))
  total = lambda key: sum(r[key] for r in records)
  test = "(not read)" if record.get("test_top1") is None else f"{mean('test_top1'):.4f}"
  seeds = f" | {len(records)} seeds, mean" if len(records) > 1 else ""
  line = (f"round {record['round']}/{config.al.rounds} | {config.al.strategy}{seeds} | "
          f"labels {record['num_labeled']} | test top-1 {test} | val top-1 "
          f"{mean('val_top1'):.4f} | select {total('select_seconds'):.2f}s train "
          f"{total('train_seconds'):.2f}s")
  if bars.enabled:
    bars.write(line)
  else:
    logger.info("%s", line)


def seeds_summary(config: ml_collections.ConfigDict, seeds: SeedBatch,
                   summaries: list[dict[str, Any]], mesh, t_start: float) -> dict[str, Any]:
  """A seed-batched run's ``summary.json``: the seeds, how they shared programs, the mean
  curve and each seed's area under it (the seeds' own summaries are in their folders)."""
  key = "test_top1" if config.eval.test else None
  auc = "area_under_curve" if config.eval.test else "val_area_under_curve"
  first = summaries[0]
  summary = {"strategy": config.al.strategy, "data": config.data.name,
             "seeds": list(seeds.seeds), "vmap_width": seeds.vmap_width,
             "rounds": first["rounds"], "num_labeled": first["num_labeled"],
             auc: {str(s): x[auc] for s, x in zip(seeds.seeds, summaries)},
             "folders": [seed_folder(s) for s in seeds.seeds]}
  if key:
    summary["mean_test_top1"] = np.mean([x["test_top1"] for x in summaries], axis=0).tolist()
  summary["devices"] = [str(d) for d in mesh.devices.flat]
  summary["mesh"] = dict(mesh.shape)
  summary["seconds_this_invocation"] = round(time.time() - t_start, 3)
  return summary


def run_summary(config: ml_collections.ConfigDict, history: list[dict[str, Any]], mesh,
             t_start: float) -> dict[str, Any]:
  counts = [h["num_labeled"] for h in history]
  summary = {"strategy": config.al.strategy, "seed": int(config.seed),
             "data": config.data.name, "rounds": len(history) - 1, "num_labeled": counts}
  if config.eval.test:
    summary["test_top1"] = [h["test_top1"] for h in history]
  summary["final"] = ({k: v for k, v in history[-1].items()
                       if k not in ("train_loss_curve", "stop_set_predictions")}
                      if history else {})
  stopped = [h["round"] for h in history if stopping.should_stop(h, config.al.stop_when)]
  if stopped:
    summary["stopped_at_round"] = stopped[0]
  if config.eval.test:
    summary["area_under_curve"] = area_under_curve(counts, summary["test_top1"])
  else:
    summary["val_area_under_curve"] = area_under_curve(counts,
                                                       [h["val_top1"] for h in history])
  summary["devices"] = [str(d) for d in mesh.devices.flat]
  summary["seconds_this_invocation"] = round(time.time() - t_start, 3)
  return summary
