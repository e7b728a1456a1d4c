"""The search on validation of ``rlmba_jax.tune``: its space and trials, each trial's
config checked before anything runs, its runs planned with the reference runs first, its
scores (the area under the validation curve, from runs that never read test), and its
result files (``tuning.json``, ``tuning.md``)."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from typing import Sequence

import ml_collections
import numpy as np

from rlmba_jax.experiment.config import validate_config
from rlmba_jax.experiment.summary import area_under_curve
from rlmba_jax.studies import report, sweeps
from rlmba_jax.studies.command_flags import RunnerFlags
from rlmba_jax.studies.sweeps import Job


# The values the paper does not give (tau, eps: AMCB; beta, kappa, the prior temperature,
# the policy's learning rate, the reward's EMA: RL-MBA). The classifier (heads, evidence
# activation) is not here: it is shared by every strategy of a comparison, so it is chosen
# apart, with a strategy-independent search (--strategy=random).
DEFAULT_SPACE = ("al.rlmba.beta=0.0|0.25|0.5|1.0|2.0;"
                 "al.rlmba.kappa=2|5|10;"
                 "modality.temperature=0.05|0.1|0.5|2.0;"
                 "modality.floor=0.0|0.02|0.1;"
                 "al.rlmba.prior_temperature=0.03|0.1|0.3|1.0;"
                 "al.rlmba.learning_rate=0.001|0.003|0.01;"
                 "al.rlmba.reward_ema=0.0|0.5")


class TestWasReadError(RuntimeError):
  """A run of the search holds a test figure: the search must not see test."""


def parse_space(text: str) -> dict[str, list[str]]:
  """``"a=1|2;b=x|y"`` -> ``{"a": ["1", "2"], "b": ["x", "y"]}``."""
  space = {}
  for part in (p.strip() for p in text.split(";")):
    if not part:
      continue
    if "=" not in part:
      raise ValueError(f"--space: {part!r} is not key=v1|v2|...")
    key, values = part.split("=", 1)
    choices = [v.strip() for v in values.split("|") if v.strip()]
    if not choices:
      raise ValueError(f"--space: {key!r} has no values")
    space[key.strip()] = choices
  return space


def draw_trials(space: dict[str, list[str]], trials: int, seed: int, grid: bool
                ) -> list[dict[str, str]]:
  """Trial 0 = no overrides (the config as given); then every combination (``grid``) or
  ``trials - 1`` distinct random combinations."""
  keys = sorted(space)
  combos = [dict(zip(keys, values)) for values in itertools.product(*(space[k] for k in keys))]
  if grid:
    return [{}] + combos
  rng = np.random.default_rng(seed)
  picked = rng.permutation(len(combos))[:max(0, trials - 1)]
  return [{}] + [combos[i] for i in sorted(picked)]


def included_trial(path: str) -> dict[str, str]:
  """The values another search chose (its ``tuning.json``), as a trial of this one."""
  with open(path) as f:
    chosen = json.load(f)["chosen"]["overrides"]
  if not isinstance(chosen, dict):
    raise ValueError("its chosen.overrides is not a key -> value mapping")
  return {str(k): str(v) for k, v in chosen.items()}


def trial_name(overrides: dict[str, str]) -> str:
  """A trial's folder name, from its values (so a search with more or fewer trials reuses
  the runs it shares with an earlier one): ``given`` for the config as given."""
  if not overrides:
    return "given"
  text = json.dumps(sorted(overrides.items()))
  return "trial_" + hashlib.sha256(text.encode()).hexdigest()[:10]


def validation_curve(workdir: str) -> tuple[list[int], list[float]]:
  """(label counts, validation top-1) of a finished run; refuses runs that saw test."""
  with open(os.path.join(workdir, "config.json")) as f:
    if json.load(f)["eval"]["test"]:
      raise TestWasReadError(f"{workdir} was run with config.eval.test=True; the search "
                             "reads only runs that never evaluated the test split")
  records = report.read_rounds(workdir)
  for record in records:
    seen = sorted(k for k in record if "test" in k)
    if seen:
      raise TestWasReadError(f"{workdir} round {record['round']} holds {seen}")
  return [r["num_labeled"] for r in records], [r["val_top1"] for r in records]


def score_trials(workdir: str, trials: list[dict[str, str]], seeds: list[int]
                 ) -> list[dict]:
  """Per trial: its overrides, the validation AUC of each seed, their mean and std."""
  rows = []
  for i, overrides in enumerate(trials):
    aucs = {}
    folders = sweeps.seed_run_folders(os.path.join(workdir, "runs", trial_name(overrides)))
    for seed in seeds:
      run_dir = folders.get(seed)
      if run_dir and os.path.exists(os.path.join(run_dir, "summary.json")):
        aucs[seed] = area_under_curve(*validation_curve(run_dir))
    values = list(aucs.values())
    rows.append({"trial": i, "name": trial_name(overrides), "overrides": overrides,
                 "val_auc": aucs,
                 "mean": float(np.mean(values)) if values else float("nan"),
                 "std": float(np.std(values)) if values else float("nan"),
                 "complete": len(values) == len(seeds)})
  return rows


def markdown(rows, chosen, command, strategy, seeds) -> str:
  """``tuning.md``: the chosen values, then every trial's values and validation AUC."""
  keys = sorted({k for r in rows for k in r["overrides"]})
  lines = [f"# Search on validation: {strategy}", "",
           f"Command: `{command}`", "",
           f"Tuning seeds {', '.join(map(str, seeds))}; score = mean over seeds of the area "
           "under the validation top-1 curve (%). Every run had `config.eval.test=False`: "
           "the test split was never evaluated and no figure of it was read.", "",
           "Chosen (best complete trial): "
           + (", ".join(f"`{k}={v}`" for k, v in chosen["overrides"].items())
              or "the config as given")
           + f" — validation AUC {100 * chosen['mean']:.2f} ± {100 * chosen['std']:.2f}", "",
           "| trial | " + " | ".join(keys) + " | val AUC | seeds |",
           "|" + " --- |" * (len(keys) + 3)]
  for r in sorted(rows, key=lambda r: -np.nan_to_num(r["mean"], nan=-1.0)):
    cells = [r["overrides"].get(k, "(given)") for k in keys]
    lines.append(f"| {r['trial']} | " + " | ".join(cells)
                 + f" | {100 * r['mean']:.2f} ± {100 * r['std']:.2f} | {len(r['val_auc'])} |")
  return "\n".join(lines) + "\n"


def needs_references(config: ml_collections.ConfigDict, strategy: str) -> bool:
  """Whether the strategy's runs read reference runs (RL-MBA's relative reward)."""
  return (strategy == "rlmba" and bool(config.al.rlmba.policy)
          and config.al.rlmba.reward == "relative" and not config.al.rlmba.reference_runs)


def check_trial(config: ml_collections.ConfigDict, strategy: str,
                overrides: dict[str, str]) -> None:
  """A trial's config is valid (a ``ValueError`` names the trial), with the test split off."""
  trial = config.copy_and_resolve_references()
  with trial.unlocked():
    trial.al.strategy = strategy
    trial.eval.test = False
    if needs_references(config, strategy):
      trial.al.rlmba.reference_runs = "(set by the search)"
  for key, value in overrides.items():
    try:
      trial.update_from_flattened_dict({key: type(_lookup(trial, key))(parse_value(value))})
    except (KeyError, AttributeError, TypeError, ValueError) as e:
      raise ValueError(f"--space {key}={value}: {e}") from None
  try:
    validate_config(trial)
  except ValueError as e:
    raise ValueError(f"trial {overrides}: {e}") from None


def plan_trial_runs(runner: RunnerFlags, config: ml_collections.ConfigDict, config_arg: str,
                    workdir: str, strategy: str, seeds: Sequence[int],
                    trials: Sequence[dict[str, str]], references: Sequence[str],
                    common: Sequence[str]) -> list[list[Job]]:
  """The seed runs of every trial, after those of ``references`` when the strategy reads
  them (each seed's reference run in ``workdir/runs/<reference>``)."""
  runs_dir = os.path.join(workdir, "runs")
  extra, reference_jobs, trial_jobs = {}, [], []
  if needs_references(config, strategy):
    extra["al.rlmba.reference_runs"] = ",".join(os.path.join(runs_dir, r) for r in references)
    for ref in references:
      reference_jobs += runner.seed_runs(config, config_arg, os.path.join(runs_dir, ref), ref,
                                         list(seeds), {}, common)
  for overrides in trials:
    trial_jobs += runner.seed_runs(config, config_arg,
                                   os.path.join(runs_dir, trial_name(overrides)), strategy,
                                   list(seeds), {**overrides, **extra}, common)
  return [reference_jobs, trial_jobs]


def refined_trials(workdir: str, trials: Sequence[dict[str, str]], seeds: Sequence[int],
                   top: int, combos: Sequence[dict[str, str]]) -> list[dict[str, str]]:
  """The second stage: the ``top`` best complete trials, each with every combination."""
  first = [r for r in score_trials(workdir, list(trials), list(seeds)) if r["complete"]]
  best = sorted(first, key=lambda r: -r["mean"])[:top]
  return [{**r["overrides"], **combo} for r in best for combo in combos]


def write_result(workdir: str, command: str, strategy: str, seeds: Sequence[int],
                 space: dict[str, list[str]], trials: Sequence[dict[str, str]]) -> str:
  """Scores every trial, chooses the best complete one, writes ``tuning.json`` and
  ``tuning.md``; -> the markdown. ``ValueError`` when no trial finished on every seed."""
  rows = score_trials(workdir, list(trials), list(seeds))
  complete = [r for r in rows if r["complete"]]
  if not complete:
    raise ValueError("no trial finished on every seed; see the runs' log.txt")
  chosen = max(complete, key=lambda r: r["mean"])
  result = {"command": command, "strategy": strategy, "seeds": list(seeds), "space": space,
            "chosen": chosen, "trials": rows}
  with open(os.path.join(workdir, "tuning.json"), "w") as f:
    json.dump(result, f, indent=1)
  text = markdown(rows, chosen, command, strategy, list(seeds))
  with open(os.path.join(workdir, "tuning.md"), "w") as f:
    f.write(text)
  return text


def _lookup(config, dotted: str):
  node = config
  for part in dotted.split("."):
    node = node[part]
  return node


def parse_value(value: str):
  """A ``--space`` value as the config holds it: a bool, a number, or the string."""
  if value.lower() in ("true", "false"):
    return value.lower() == "true"
  try:
    return float(value) if any(c in value for c in ".e") and not value.isalpha() else int(value)
  except ValueError:
    return value
