"""A comparison of strategies over seeds on one config (``rlmba_jax.sweep``): its entries
expanded, its runs planned with RL-MBA's reference runs first, and its report written from
the finished runs."""

from __future__ import annotations

import json
import os
from typing import Sequence

import ml_collections

from rlmba_jax.experiment.config import validate_config
from rlmba_jax.studies import report, sweeps
from rlmba_jax.studies.command_flags import RunnerFlags
from rlmba_jax.studies.sweeps import Job, is_finished, parse_entry


Entry = tuple[str, str, dict[str, str]]  # (label, strategy, config overrides)


def expand_entries(strategies: Sequence[str], tuned_path: str = "") -> list[Entry]:
  """The ``LABEL=NAME/key=value`` entries, ``{tuned}`` replaced by the values the search in
  ``tuned_path`` (``rlmba_jax.tune``'s tuning.json) chose on validation."""
  tuned = ""
  if tuned_path:
    with open(tuned_path) as f:
      chosen = json.load(f)["chosen"]["overrides"]
    tuned = "".join(f"/{k}={v}" for k, v in chosen.items())
  elif any("{tuned}" in e for e in strategies):
    raise ValueError("an entry uses {tuned}; name the search's tuning.json in --tuned")
  entries = [parse_entry(e.replace("{tuned}", tuned)) for e in strategies]
  labels = [e[0] for e in entries]
  if len(set(labels)) != len(labels):
    raise ValueError(f"--strategies has repeated labels: {labels}")
  return entries


def plan_runs(runner: RunnerFlags, config: ml_collections.ConfigDict, config_arg: str,
              entries: Sequence[Entry], seeds: Sequence[int], references: Sequence[str],
              runs_dir: str, common: Sequence[str]) -> list[list[Job]]:
  """Every entry's seed runs in two phases: the others, then RL-MBA's, whose relative reward
  reads the same-seed runs of ``references`` (in this sweep, or run by an earlier call)
  unless the entry sets ``al.rlmba.reference_runs`` itself. Each entry's config is checked
  before anything runs (a ``ValueError`` names the entry)."""
  labels = [label for label, _, _ in entries]
  jobs, late_jobs = [], []
  for label, strategy, overrides in entries:
    if strategy == "rlmba" and "al.rlmba.reference_runs" not in overrides:
      missing = [r for r in references
                 if r not in labels and not os.path.isdir(os.path.join(runs_dir, r))]
      if missing and overrides.get("al.rlmba.policy", "true").lower() != "false":
        raise ValueError(f"RL-MBA's reference strategies {missing} are not in "
                         "--strategies; add them or set --references")
      overrides = dict(overrides)
      overrides["al.rlmba.reference_runs"] = ",".join(
          os.path.join(runs_dir, r) for r in references)  # each seed's run in it
    trial = config.copy_and_resolve_references()
    with trial.unlocked():
      trial.al.strategy = strategy
      trial.al.rlmba.reference_runs = "(set by the sweep)"
    try:
      validate_config(trial)
    except ValueError as e:
      raise ValueError(f"--strategies entry {label!r}: {e}") from None
    planned = runner.seed_runs(config, config_arg, os.path.join(runs_dir, label), strategy,
                               list(seeds), overrides, common)
    (late_jobs if strategy == "rlmba" else jobs).extend(planned)
  return [jobs, late_jobs]


def write_report(workdir: str, config: ml_collections.ConfigDict, labels: Sequence[str],
                 seeds: Sequence[int], notes: str, title: str,
                 full_data: float | None = None, reading: str = "") -> str:
  """``workdir/report.md`` with its curves, modality-weight and Shapley plots, over the
  runs of ``labels`` that finished every round on ``seeds`` (a run still going would cut
  its row's curve short); validation figures when the runs read no test. -> its text."""
  runs_dir = os.path.join(workdir, "runs")
  runs = report.collect(workdir)
  folders = {label: sweeps.seed_run_folders(os.path.join(runs_dir, label)) for label in labels}
  runs = {label: {seed: recs for seed, recs in runs[label].items()
                  if seed in seeds and is_finished(folders[label][seed], config.al.rounds)}
          for label in labels if label in runs}
  runs = {label: per_seed for label, per_seed in runs.items() if per_seed}
  metric = "test_top1" if config.eval.test else "val_top1"
  plots = []
  if runs:
    plots.append(report.plot_learning_curves(runs, os.path.join(workdir, "curves.png"),
                                             full_data=full_data, metric=metric))
    plots.append(report.plot_modality_series(runs, os.path.join(workdir, "modality_weights.png"),
                                             "modality_weights", "AMCB weight"))
    plots.append(report.plot_modality_series(runs, os.path.join(workdir, "shapley.png"),
                                             "shapley", "Shapley value"))
  text = report.markdown_report(runs, title=title, notes=notes,
                                plots=tuple(os.path.basename(p) for p in plots), metric=metric)
  if reading and os.path.exists(reading):
    with open(reading) as f:
      text += "\n" + f.read()
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "report.md"), "w") as f:
    f.write(text)
  return text
