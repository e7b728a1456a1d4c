"""The experiment configuration: defaults, validation and the resume-compatibility check.

``default_config()`` is the schema: every config file starts from it and overrides values.
It is locked and type-safe (ml_collections), so a misspelt key or a value of the wrong type
is refused where it is set; ``validate_config`` checks ranges and choices from one table
(``_schema``, which reuses the library's own lists of choices) and the rules between keys,
before any work is done. ``parse_arg`` reads combinable config arguments
(``configs/mfeat.py:paper,runlocal``).
"""

from __future__ import annotations

import difflib
import json
import math
import os
from typing import Any, Callable, NamedTuple, Sequence

import ml_collections

from rlmba_jax.config_choices import CONTRIBUTIONS
from rlmba_jax.config_choices import DATA_SOURCES as SOURCES
from rlmba_jax.config_choices import DIVERSITIES, DTYPES, EVIDENCE_ACTIVATIONS, FAVOUR, GCN_METHODS
from rlmba_jax.config_choices import GREEDY_ORACLE as ORACLE
from rlmba_jax.config_choices import GREEDY_ORACLE_SOURCES as ORACLE_SOURCES
from rlmba_jax.config_choices import (ON_ERROR, OPTIMIZERS, ORACLES, POLICY_INPUTS, POOLINGS,
                                      PROGRESS, REWARDS, STOP_WHEN)
from rlmba_jax.config_defaults import (  # pylint: disable=unused-import  (re-exported)
    default_config, paper_protocol, parse_arg)
from rlmba_jax.data.registry import DATASETS
from rlmba_jax.data.specs import parse_assignments, parse_modalities
from rlmba_jax.errors import ConfigError
from rlmba_jax.models.classifier import check_head_and_fusion, encoder_names
from rlmba_jax.selection import available_strategies


# Keys that may differ when an existing workdir is continued (they change how far the run
# goes or where caches live, not what it computes).
RESUMABLE_KEYS = ("al.rounds", "data.data_dir", "eval.tensorboard", "eval.progress",
                  "al.stop_when", "al.stopping.kappa", "al.stopping.window",
                  "al.stopping.min_gain")
# Folders: stored resolved (``resolve_paths``); on resume the same folder written another
# way (relative, a symlink) is the same value.
PATH_KEYS = ("data.manual_dir",)


def _same_path(a, b) -> bool:
  return bool(a) and bool(b) and os.path.realpath(str(a)) == os.path.realpath(str(b))


def resolve_paths(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """``config`` with its folders (``PATH_KEYS``) made absolute, so a workdir records where
  its data is whatever folder a later command (or the labelling page) starts from."""
  config = config.copy_and_resolve_references()
  if config.data.manual_dir and not os.path.isabs(config.data.manual_dir):
    config.data.manual_dir = os.path.abspath(config.data.manual_dir)
  return config


# Keys added with a default that computes something else than runs made before them did:
# a stored config without the key had this value (so such a run is continued, or loaded,
# as it was made, and a new default is never applied to it silently).
LEGACY_DEFAULTS = {"data.drop_pool_copies": False}


def describe_config() -> str:
  """Every config key with its default and the comments ``default_config`` gives it (the
  comment lines just above the key, and the one after it): ``rlmba-jax --config_help``."""
  import inspect  # pylint: disable=g-import-not-at-top
  import re  # pylint: disable=g-import-not-at-top
  defaults = flat_dict(default_config())
  notes: dict[str, list[str]] = {}
  pending: list[str] = []
  for line in inspect.getsource(default_config).splitlines():
    text = line.strip()
    if text.startswith("#"):
      pending.append(text.lstrip("# "))
      continue
    m = re.match(r"c\.([\w.]+)\s*=\s*(.*)$", text)
    if m and m.group(1) in defaults:
      after = m.group(2).split("  # ", 1)
      notes[m.group(1)] = pending + ([after[1]] if len(after) > 1 else [])
    pending = []  # a key line or a blank line ends the comment block above it
  out = []
  for key, value in defaults.items():
    out.append(f"config.{key} = {value!r}")
    out.extend(f"    {n}" for n in notes.get(key, []))
  return "\n".join(out)


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
  out = {}
  for k, v in d.items():
    key = f"{prefix}{k}"
    if isinstance(v, dict):
      out.update(_flatten(v, key + "."))
    else:
      out[key] = v
  return out


def config_from_stored(stored: dict[str, Any]) -> ml_collections.ConfigDict:
  """The config a workdir's ``config.json`` holds, over the defaults (keys added since the
  run started keep their defaults)."""
  config = default_config()
  flat = _flatten(stored)
  config.update_from_flattened_dict(
      {**{k: v for k, v in LEGACY_DEFAULTS.items() if k not in flat}, **flat})
  return config


def flat_dict(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """``{"al.rounds": 5, ...}`` with tuples as lists (JSON round-trip)."""
  return _flatten(json.loads(config.to_json()))


class Rule(NamedTuple):
  """A condition on one config value and the words its error message uses."""
  holds: Callable[[Any], bool]
  says: str


def positive() -> Rule:
  return Rule(lambda v: v > 0, "must be positive")


def non_negative() -> Rule:
  return Rule(lambda v: v >= 0, "must not be negative")


def in_range(low: float, high: float, *, closed: bool = False) -> Rule:
  """``[low, high)`` (``[low, high]`` when ``closed``)."""
  if closed:
    return Rule(lambda v: low <= v <= high, f"must be in [{low}, {high}]")
  return Rule(lambda v: low <= v < high, f"must be in [{low}, {high})")


def at_least(low: int, why: str) -> Rule:
  return Rule(lambda v: v >= low, f"must be at least {low} ({why})")


def one_of(choices: Sequence[str], what: str = "") -> Rule:
  """One of ``choices`` (the library's own constant, so a new choice needs no edit here)."""
  listed = (", ".join(repr(c) for c in choices[:-1]) + f" or {choices[-1]!r}"
            if len(choices) > 1 else repr(choices[0]))
  says = (f"is not {what}; choose from {', '.join(choices)}" if what else f"; use {listed}")
  return Rule(lambda v: v in choices, says)


def _schema() -> dict[str, Rule]:
  """The value rules, by key: ranges and choices. Rules between keys are in
  ``_check_combinations``."""
  return {
      "seed": in_range(0, 2 ** 31),  # numpy's and JAX's seeds alike
      "num_devices": non_negative(),
      "data.name": one_of(tuple(DATASETS), "a data set"),
      "data.source": one_of(SOURCES),
      "data.on_error": one_of(ON_ERROR),
      "data.test_size": non_negative(), "data.val_size": non_negative(),
      "data.text_length": positive(), "data.image_resize": positive(),
      "data.image_size": positive(), "data.frame_size": positive(),
      "data.num_frames": positive(), "data.audio_seconds": positive(),
      "model.width": positive(), "model.dropout": in_range(0, 1),
      "model.evidence_activation": one_of(EVIDENCE_ACTIVATIONS),
      "model.encoder_filters": positive(), "model.bert_pooling": one_of(POOLINGS),
      "model.dtype": one_of(DTYPES),
      "train.batch_size": positive(), "train.eval_batch_size": positive(),
      "train.num_epochs": positive(), "train.learning_rate": positive(),
      "train.weight_decay": non_negative(), "train.grad_clip_norm": non_negative(),
      "train.annealing_epochs": non_negative(), "train.optimizer": one_of(OPTIMIZERS),
      "train.warmup_epochs": non_negative(), "train.lr_decay": positive(),
      "train.data_workers": non_negative(),
      "modality.contribution": one_of(CONTRIBUTIONS), "modality.temperature": positive(),
      "modality.floor": non_negative(), "modality.momentum": in_range(0, 1),
      "modality.favour": one_of(FAVOUR),
      "al.strategy": one_of(available_strategies() + (ORACLE,), "a strategy"),
      "al.greedy_oracle.source": one_of(ORACLE_SOURCES),
      "al.greedy_oracle.subsets": positive(),
      "al.stop_when": one_of(STOP_WHEN), "al.stopping.set_size": positive(),
      "al.stopping.kappa": in_range(-1, 1, closed=True), "al.stopping.window": positive(),
      "al.initial_size": positive(), "al.budget_per_round": positive(),
      "al.rounds": non_negative(), "al.oracle": one_of(ORACLES),
      "al.bald.passes": at_least(2, "BALD needs at least 2 dropout passes"),
      "al.kmeans.iterations": non_negative(),
      "al.deepfool.candidate_classes": positive(), "al.deepfool.max_iterations": positive(),
      "al.deepfool.overshoot": non_negative(),
      "al.gcnal.method": one_of(GCN_METHODS), "al.gcnal.epochs": positive(),
      "al.gcnal.hidden": positive(), "al.gcnal.dropout": in_range(0, 1),
      "al.gcnal.learning_rate": positive(), "al.gcnal.weight_decay": non_negative(),
      "al.gcnal.unlabelled_weight": non_negative(),
      "al.gcnal.margin": in_range(0, 1, closed=True),
      "al.rlmba.kappa": positive(), "al.rlmba.beta": non_negative(),
      "al.rlmba.lloyd_iterations": non_negative(), "al.rlmba.diversity": one_of(DIVERSITIES),
      "al.rlmba.prior_temperature": positive(), "al.rlmba.learning_rate": non_negative(),
      "al.rlmba.difficulty_weight": non_negative(),
      "al.power_entropy.beta": non_negative(), "al.power_margin.beta": non_negative(),
      "data.pool_imbalance": Rule(lambda v: v >= 1.0, "must be at least 1 (1: as it is)"),
      "data.label_noise": in_range(0, 1),
      "al.rlmba.baseline_momentum": in_range(0, 1),
      "al.rlmba.advantage_clip": non_negative(), "al.rlmba.entropy_weight": non_negative(),
      "al.rlmba.reward": one_of(REWARDS), "al.rlmba.balance_weight": non_negative(),
      "al.rlmba.reward_ema": in_range(0, 1),
      "al.rlmba.policy_inputs": one_of(POLICY_INPUTS),
      "checkpoint.max_to_keep": positive(),
      "eval.progress": one_of(PROGRESS),
  }


_FLOAT32_MAX = 3.4028234663852886e38  # numbers reach the device as float32


def _finite(value: Any) -> bool:
  """Finite, also once it is a float32 (1e300 is finite in Python, inf on the device)."""
  values = value if isinstance(value, (tuple, list)) else (value,)
  return all(not isinstance(v, float) or (math.isfinite(v) and abs(v) <= _FLOAT32_MAX)
             for v in values)


def _check_keys(given: dict[str, Any], defaults: dict[str, Any]) -> None:
  for key in given:
    if key not in defaults:
      close = difflib.get_close_matches(key, defaults, n=1)
      hint = f"; did you mean config.{close[0]}?" if close else ""
      raise ConfigError(f"unknown config key config.{key}{hint}")
  for key in defaults:
    if key not in given:
      raise ConfigError(f"config.{key} is missing; start config files from "
                        "rlmba_jax.experiment.config.default_config()")


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Raises ``ConfigError`` naming the key for unknown or missing keys, values outside
  their range or choices (NaN and inf included), and combinations that cannot run.

  Types are ml_collections' business: ``default_config()`` is type-safe and locked, so a
  value of the wrong type or a new key is refused where it is set.
  """
  given = flat_dict(config)
  _check_keys(given, flat_dict(default_config()))
  for key, value in given.items():
    if not _finite(value):
      raise ConfigError(f"config.{key}={value!r} is not a finite number (in float32, as "
                        "the device computes: at most 3.4e38)")
  for key, rule in _schema().items():
    value = given[key]
    if not rule.holds(value):
      sep = "" if rule.says.startswith(";") else " "
      raise ConfigError(f"config.{key}={value!r}{sep}{rule.says}")
  _check_combinations(config, given)


def _check_combinations(config: ml_collections.ConfigDict, given: dict[str, Any]) -> None:
  """The rules between keys."""
  if given["al.strategy"] == "bald" and given["model.dropout"] == 0.0:
    raise ConfigError("config.al.strategy='bald' samples dropout masks but "
                      "config.model.dropout=0.0; set a dropout rate such as 0.1")
  if given["al.oracle"] == "person" and given["al.diagnostics"]:
    raise ConfigError("config.al.diagnostics=True reads the labels of the pool's examples "
                      "before they are picked, which only the data set can give; with "
                      "config.al.oracle='person' set al.diagnostics=False")
  if given["al.strategy"] == ORACLE and given["al.oracle"] == "person":
    raise ConfigError("config.al.strategy='greedy_oracle' reads the pool's labels to choose; "
                      "a person's run cannot use it")
  if given["al.strategy"] in ("rlmba", ORACLE):
    if given["al.rlmba.efda"] and given["model.head"] != "evidential":
      raise ConfigError("config.al.strategy='rlmba' with config.al.rlmba.efda=True scores "
                        "evidential uncertainty; set config.model.head='evidential' (and "
                        "model.fusion='evidence'), or config.al.rlmba.efda=False")
    if (given["al.strategy"] == "rlmba" and given["al.rlmba.policy"]
        and given["al.rlmba.reward"] == "relative"
        and not str(given["al.rlmba.reference_runs"]).strip()):
      raise ConfigError("config.al.rlmba.reward='relative' compares with reference runs; "
                        "name their workdirs in config.al.rlmba.reference_runs, or use "
                        "reward='incremental' or 'absolute'")
  try:
    check_head_and_fusion(given["model.head"], given["model.fusion"], given["model.fused_head"])
  except ValueError as e:
    raise ConfigError(f"config.{e}") from None
  num_modalities = len([m for m in str(given["data.modalities"]).split(",") if m.strip()])
  if not 0.0 <= given["modality.floor"] * num_modalities < 1.0:
    raise ConfigError(f"config.modality.floor={given['modality.floor']} times "
                      f"{num_modalities} modalities must be in [0, 1)")
  if len(given["train.betas"]) != 2 or not all(0 <= b < 1 for b in given["train.betas"]):
    raise ConfigError(f"config.train.betas={given['train.betas']!r}: two numbers in [0, 1)")
  if len(given["data.frame_resize"]) != 2:
    raise ConfigError(f"config.data.frame_resize={given['data.frame_resize']!r}: (H, W)")
  if given["data.image_size"] > given["data.image_resize"] or given["data.frame_size"] > min(
      given["data.frame_resize"]):
    raise ConfigError("config.data.image_size / frame_size must not exceed the resized "
                      "image (data.image_resize / data.frame_resize)")
  try:
    _check_modality_assignments(config, given)
  except ValueError as e:
    raise ConfigError(f"config.{e}") from None


def _check_modality_assignments(config, given: dict[str, Any]) -> None:
  """``model.encoders``, ``model.pretrained`` and ``train.encoder_learning_rates`` name
  modalities the data has, with valid encoders, existing files and positive rates."""
  encoder_names(config.model)
  if not str(given["data.modalities"]).strip():
    return  # every modality of the data set: named only once it is read
  modalities = set(parse_modalities(given["data.modalities"]))
  for key in ("model.encoders", "model.pretrained", "train.encoder_learning_rates"):
    unknown = sorted(set(parse_assignments(given[key], key)) - modalities)
    if unknown:
      raise ValueError(f"{key} names modalities {unknown} that data.modalities "
                       f"({sorted(modalities)}) does not have")
  for m, lr in parse_assignments(given["train.encoder_learning_rates"],
                                 "train.encoder_learning_rates").items():
    if not float(lr) > 0:
      raise ValueError(f"train.encoder_learning_rates: {m}={lr} must be positive")
  for m, path in parse_assignments(given["model.pretrained"], "model.pretrained").items():
    if not os.path.exists(path):
      raise ValueError(f"model.pretrained: the weights for {m!r}, {path!r}, do not exist")


def check_budget(config: ml_collections.ConfigDict, pool_size: int) -> None:
  """The whole schedule must fit in the pool."""
  needed = config.al.initial_size + config.al.rounds * config.al.budget_per_round
  if needed > pool_size:
    raise ConfigError(
        f"the schedule needs {needed} labels (al.initial_size={config.al.initial_size} + "
        f"al.rounds={config.al.rounds} x al.budget_per_round={config.al.budget_per_round}) "
        f"but the pool holds {pool_size}; lower al.rounds or al.budget_per_round")


def config_differences(stored: dict[str, Any], config: ml_collections.ConfigDict
                       ) -> list[str]:
  """Keys whose values differ between a workdir's stored config and ``config``.

  Keys in ``RESUMABLE_KEYS`` are ignored (continuing a run with more rounds is allowed).
  """
  now = flat_dict(config)
  before = _flatten(stored)
  before = {**{k: v for k, v in LEGACY_DEFAULTS.items() if k not in before}, **before}
  defaults = flat_dict(default_config())
  diffs = []
  for key in sorted(set(now) | set(before)):
    if key in RESUMABLE_KEYS:
      continue
    if key == "al.strategy" and strategy_may_change(before, now):
      continue  # a person's run: each round's strategy is in its ledger line
    if key in PATH_KEYS and _same_path(before.get(key), now.get(key)):
      continue  # the same folder, written another way
    if key not in before and key in defaults and now.get(key) == defaults[key]:
      continue  # an option added after the run started, left at its default
    if now.get(key, "<absent>") != before.get(key, "<absent>"):
      diffs.append(f"config.{key}: workdir has {before.get(key, '<absent>')!r}, "
                   f"now {now.get(key, '<absent>')!r}")
  return diffs


def strategy_may_change(before: dict[str, Any], now: dict[str, Any]) -> bool:
  """A run a person answers may query with another strategy from one round to the next
  (the ledger line of each round records its strategy), unless RL-MBA is one of them: its
  policy is part of the round state."""
  return (before.get("al.oracle") == now.get("al.oracle") == "person"
          and "rlmba" not in (before.get("al.strategy"), now.get("al.strategy")))


def strategy_options(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """Keyword options of the configured strategy: ``config.al.<strategy>`` if it exists."""
  options = config.al.get(config.al.strategy)
  if isinstance(options, ml_collections.ConfigDict):
    return options.to_dict()
  return {}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Lets this module serve as a config file itself (``--config=.../config.py``)."""
  del arg
  return default_config()
