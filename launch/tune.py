r"""Chooses the values the paper leaves open on validation only, on tuning seeds.

  python launch/tune.py --config=configs/mfeat.py:paper --workdir=runs/mfeat_tune \
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
persistent compilation cache, as in ``launch/sweep.py``. Use the tuning seeds for nothing
else: report seeds (0..4) never appear here.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import sys

import numpy as np
from absl import app
from absl import flags
from ml_collections import config_flags

from rlmba_jax.experiment import report
from rlmba_jax.experiment import sweeps
from rlmba_jax.experiment.config import ConfigError, validate_config
from rlmba_jax.experiment.progress import progress_wanted
from rlmba_jax.experiment.loop import area_under_curve
from rlmba_jax.experiment.sweeps import define_runner_flags

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

_CONFIG = config_flags.DEFINE_config_file("config", "configs/mfeat.py:paper", "Config file.",
                                          lock_config=False)
_WORKDIR = flags.DEFINE_string("workdir", None, "Search folder.")
_STRATEGY = flags.DEFINE_string("strategy", "rlmba", "The strategy whose values are chosen.")
_SPACE = flags.DEFINE_string("space", DEFAULT_SPACE, "key=v1|v2|...;key=...")
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
flags.adopt_module_key_flags(sweeps)  # listed by --helpshort too


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


def _markdown(rows, chosen, command, strategy, seeds) -> str:
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


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not _WORKDIR.value:
    print(f"{os.path.basename(sys.argv[0])} needs --workdir=FOLDER, where the search's runs "
          "and report go (an existing one is continued); e.g. "
          "python launch/tune.py --workdir=runs/tune --trials=8 --seeds=100,101,102", file=sys.stderr)
    sys.exit(2)
  seeds = [int(s) for s in _SEEDS.value]
  reserved = sorted(set(seeds) & {int(s) for s in _REPORT_SEEDS.value})
  if reserved:
    raise app.UsageError(f"--seeds {reserved} are report seeds; tune on others (100, 101, "
                         "102, ...)")
  config = _CONFIG.value
  config_arg = flags.FLAGS["config"].config_filename
  try:
    space = parse_space(_SPACE.value)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  trials = draw_trials(space, _TRIALS.value, _SEARCH_SEED.value, _GRID.value)
  for path in _INCLUDE.value:
    try:
      trials.append(included_trial(path))
    except (OSError, ValueError, KeyError) as e:
      raise app.UsageError(f"--include {path}: {e}") from None
  trials = [t for i, t in enumerate(trials) if t not in trials[:i]]
  common = [a for a in sys.argv[1:] if a.startswith("--config.")]
  if any(a.startswith("--config.eval.test") for a in common):
    raise app.UsageError("the search sets config.eval.test=False itself")
  common.append("--config.eval.test=False")
  workdir = os.path.abspath(_WORKDIR.value)
  strategy = _STRATEGY.value
  needs_references = (strategy == "rlmba" and config.al.rlmba.policy
                      and config.al.rlmba.reward == "relative"
                      and not config.al.rlmba.reference_runs)

  def check(overrides):
    trial = config.copy_and_resolve_references()
    with trial.unlocked():
      trial.al.strategy = strategy
      trial.eval.test = False
      if needs_references:
        trial.al.rlmba.reference_runs = "(set by the search)"
    for key, value in overrides.items():
      try:
        trial.update_from_flattened_dict({key: type(_lookup(trial, key))(_parse(value))})
      except (KeyError, AttributeError, TypeError, ValueError) as e:
        raise app.UsageError(f"--space {key}={value}: {e}") from None
    try:
      validate_config(trial)
    except ConfigError as e:
      raise app.UsageError(f"trial {overrides}: {e}") from None

  for overrides in trials:  # every trial's config must be valid before anything runs
    check(overrides)
  refine_combos = []
  if _REFINE_TOP.value > 0:
    try:
      refine_combos = draw_trials(parse_space(_REFINE_SPACE.value), 0, 0, True)[1:]
    except ValueError as e:
      raise app.UsageError(str(e)) from None
    for combo in refine_combos:
      check(combo)

  extra = {}
  if needs_references:
    extra["al.rlmba.reference_runs"] = ",".join(
        os.path.join(workdir, "runs", r) for r in _REFERENCES.value)  # each seed's run in it

  def run_trials(trials):
    references, runs = [], []
    if needs_references:
      for ref in _REFERENCES.value:
        references += _RUNNER.seed_runs(config, config_arg, os.path.join(workdir, "runs", ref),
                                        ref, seeds, {}, common)
    for overrides in trials:
      runs += _RUNNER.seed_runs(config, config_arg,
                                os.path.join(workdir, "runs", trial_name(overrides)),
                                strategy, seeds, {**overrides, **extra}, common)
    if references or runs:
      from rlmba_jax.data import load_dataset  # pylint: disable=g-import-not-at-top
      load_dataset(config.data, progress=progress_wanted(_RUNNER.progress.value))
      _RUNNER.run_jobs([references, runs])

  run_trials(trials)
  if refine_combos:
    first = [r for r in score_trials(workdir, trials, seeds) if r["complete"]]
    best = sorted(first, key=lambda r: -r["mean"])[:_REFINE_TOP.value]
    refined = [{**r["overrides"], **combo} for r in best for combo in refine_combos]
    for overrides in refined:
      check(overrides)
    trials = trials + [t for t in refined if t not in trials]
    run_trials(trials)

  rows = score_trials(workdir, trials, seeds)
  complete = [r for r in rows if r["complete"]]
  if not complete:
    raise app.UsageError("no trial finished on every seed; see the runs' log.txt")
  chosen = max(complete, key=lambda r: r["mean"])
  command = "python launch/tune.py " + " ".join(sys.argv[1:])
  result = {"command": command, "strategy": strategy, "seeds": seeds, "space": space,
            "chosen": chosen, "trials": rows}
  with open(os.path.join(workdir, "tuning.json"), "w") as f:
    json.dump(result, f, indent=1)
  text = _markdown(rows, chosen, command, strategy, seeds)
  with open(os.path.join(workdir, "tuning.md"), "w") as f:
    f.write(text)
  print(text)


def _lookup(config, dotted: str):
  node = config
  for part in dotted.split("."):
    node = node[part]
  return node


def _parse(value: str):
  if value.lower() in ("true", "false"):
    return value.lower() == "true"
  try:
    return float(value) if any(c in value for c in ".e") and not value.isalpha() else int(value)
  except ValueError:
    return value


if __name__ == "__main__":
  try:
    app.run(main)
  except KeyboardInterrupt:  # run_jobs said what is kept
    sys.exit(130)
