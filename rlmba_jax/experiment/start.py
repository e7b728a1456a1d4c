"""A run's start: the checks made before anything is written (the workdir, the config
against the data, your own encoders, the data files' fingerprint), the parts a run is made
of (the data, the model and its trainer, the round env), and the state it starts or
resumes from (the latest checkpoint, or a policy to start from)."""

from __future__ import annotations

import collections
import logging
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from rlmba_jax import durable, parallel
from rlmba_jax.data import load_dataset
from rlmba_jax.data.specs import parse_assignments
from rlmba_jax.errors import ConfigError, DataError, RunError, WorkdirError
from rlmba_jax.experiment import checkpoint
from rlmba_jax.experiment.checkpoint import RoundCheckpointer
from rlmba_jax.experiment.config import check_budget, config_differences
from rlmba_jax.experiment.progress import progress_wanted
from rlmba_jax.experiment.round_env import RoundEnv, RoundState, initial_state, make_env
from rlmba_jax.experiment.seeds import SeedBatch
from rlmba_jax.experiment.workdir import read_stored_json
from rlmba_jax.models import build_model
from rlmba_jax.models.classifier import encoder_names, is_own_encoder
from rlmba_jax.models.pretrained import PretrainedWeightsError, convert_state_dict, load_safetensors
from rlmba_jax.person.oracle import check_oracle
from rlmba_jax.train import Trainer, make_loss, make_optimizer
from rlmba_jax.train.optimizers import schedule_from_config
from rlmba_jax.train.streaming import StreamingTrainer


logger = logging.getLogger(__name__)


SEEDS_FILE = "seeds.json"  # a seed-batched workdir's seeds and vmap width


def check_workdir(workdir: str, config: ml_collections.ConfigDict,
                   batched: bool = False) -> None:
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    if os.path.exists(os.path.join(workdir, "ledger.jsonl")):
      raise WorkdirError(f"{workdir} holds a ledger.jsonl but no config.json; it is not a "
                         "workdir of this tool. Choose another --workdir.")
    return
  is_batched = os.path.exists(os.path.join(workdir, SEEDS_FILE))
  if is_batched != batched:
    raise WorkdirError(
        f"{workdir} holds a {'seed-batched run (seeds.json)' if is_batched else 'single run'}"
        f"; {'give its --seeds' if is_batched else 'run it without --seeds'} to continue it, "
        "or choose another --workdir. Nothing was changed.")
  diffs = config_differences(read_stored_json(path), config)
  if batched:  # a batched run's seeds are in seeds.json
    diffs = [d for d in diffs if not d.startswith("config.seed:")]
  if diffs:
    raise WorkdirError(
        f"{workdir} holds a run with a different config; nothing was changed. Use another "
        "--workdir, or the same config (only al.rounds may grow). Differences:\n  "
        + "\n  ".join(diffs))


def load_policy(workdir: str, target: dict[str, Any]):
  """The policy state of the latest checkpoint of an earlier RL-MBA run (warm start)."""
  source = RoundCheckpointer(os.path.join(workdir, "checkpoints"), 1)
  latest = source.latest_round()
  if latest is None:
    raise WorkdirError(f"config.al.rlmba.init_from={workdir!r} holds no checkpoint")
  try:
    restored, _ = source.restore(latest, target)
  except Exception as e:  # pylint: disable=broad-except
    raise WorkdirError(f"cannot load the policy from {workdir!r} (round {latest}): {e}. "
                       "It must be an rlmba run with the same modalities, budget and "
                       "policy size.") from e
  finally:
    source.close()
  logger.info("policy warm-started from %s (round %d)", workdir, latest)
  return restored["policy"]


def pretrained_hook(model_cfg):
  """``variables -> variables`` that puts the pretrained encoders of ``model.pretrained``
  in place (each file read once), or None when no modality names weights."""
  weights = parse_assignments(model_cfg.pretrained, "model.pretrained")
  if not weights:
    return None
  state_dicts: dict[str, Any] = {}

  def hook(variables):
    variables = {c: dict(v) for c, v in variables.items()}
    for m, path in weights.items():
      scope = f"encoder_{m}"
      if scope not in variables["params"]:
        raise WorkdirError(f"config.model.pretrained names modality {m!r}, which the model "
                           "has no encoder for")
      if path not in state_dicts:
        state_dicts[path] = load_safetensors(path)
      sub = {c: v[scope] for c, v in variables.items() if scope in v}
      try:
        loaded = convert_state_dict(state_dicts[path], sub, source=repr(path))
      except PretrainedWeightsError as e:
        raise WorkdirError(f"modality {m!r}: {e}") from e
      for c, v in loaded.items():
        variables[c][scope] = v
    return variables

  return hook


# In-memory trainers of this process's earlier runs, by what their compiled programs depend
# on (the model, config.model, config.train, the mesh), most recent last. A run that finds
# its own reuses the programs already traced and compiled: a notebook or a script may call
# run() with one configuration many times, and a fresh Trainer traces and loads every
# program again (on a CPU, most of a small run's time).
_TRAINERS: collections.OrderedDict = collections.OrderedDict()


_TRAINERS_KEPT = 4


def make_trainer(config: ml_collections.ConfigDict, model, data, mesh,
                 epoch_callback=None) -> Trainer:
  """A ``Trainer`` (in-memory data; the one of an earlier run with the same model, model
  and training config and mesh, if kept) or ``StreamingTrainer`` (record data sets)."""
  init_hook = pretrained_hook(config.model)  # made per run: it reads the weight files
  kwargs = dict(batch_size=config.train.batch_size, num_epochs=config.train.num_epochs,
                eval_batch_size=config.train.eval_batch_size, mesh=mesh,
                loss_fn=make_loss(config.model, config.train),
                schedule=schedule_from_config(config.train))
  if data.streamed:
    return StreamingTrainer(model, make_optimizer(config.train),
                            train_transform=data.train_transform,
                            eval_transform=data.eval_transform,
                            data_workers=config.train.data_workers, init_hook=init_hook,
                            epoch_callback=epoch_callback, **kwargs)
  key = (model, config.model.to_json(), config.train.to_json(), mesh)
  try:
    trainer = _TRAINERS.pop(key, None)
  except TypeError:  # a module with an unhashable field (build_model makes none): not kept
    key = trainer = None
  trainer = trainer or Trainer(model, make_optimizer(config.train), **kwargs)
  if key is not None:
    _TRAINERS[key] = trainer
    while len(_TRAINERS) > _TRAINERS_KEPT:
      _TRAINERS.popitem(last=False)
  return trainer.with_host_callbacks(init_hook=init_hook, epoch_callback=epoch_callback)


FINGERPRINT_FILE = "data_fingerprint.json"  # own data's files, as the run first read them


def record_config(path: str, config: ml_collections.ConfigDict) -> None:
  """Writes the config the run goes on with, once the workdir's check has passed: the same
  file on a plain resume; the new value of a key that may change between invocations
  (al.rounds grown, a person's next strategy), so ``load_model`` and readers see it."""
  text = config.to_json(indent=2) + "\n"
  if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      if f.read() == text:
        return
  durable.write_atomic(path, text)


def record_fingerprint(workdir: str, data) -> None:
  if data.fingerprint is not None:
    durable.write_json(os.path.join(workdir, FINGERPRINT_FILE), dict(data.fingerprint))


def check_fingerprint(workdir: str, data) -> None:
  """Own data must be the files the run started from: a relabelled validation row or a
  replaced array would change what later rounds measure without a word."""
  path = os.path.join(workdir, FINGERPRINT_FILE)
  if data.fingerprint is None or not os.path.exists(path):
    return
  before, now = read_stored_json(path), dict(data.fingerprint)
  changed = sorted(f for f in set(before) | set(now) if before.get(f) != now.get(f))
  if changed:
    raise DataError(
        f"the data files {changed} changed since this run started (their sha256 is in "
        f"{path}); the run's earlier rounds were measured on the files as they were. "
        "Restore them, or start a new workdir for the new data. Nothing was changed.")


def check_and_record(config: ml_collections.ConfigDict, workdir: str, data, writer: bool,
                     first_files: dict[str, Any] | None = None) -> None:
  """The checks of a run against its data (the budget, the evaluation splits, the oracle,
  your own encoders, the data files' fingerprint), then the config recorded: a refused
  command changes nothing. ``first_files``: name -> JSON a new workdir gets beside the
  fingerprint (a seed-batched run's seeds.json)."""
  check_budget(config, len(data.pool))
  check_eval_splits(config, data)
  check_oracle(config, data)
  check_own_encoders(config, data)
  if writer and not os.path.exists(os.path.join(workdir, "config.json")):
    record_fingerprint(workdir, data)
    for name, obj in (first_files or {}).items():
      durable.write_json(os.path.join(workdir, name), obj)
  check_fingerprint(workdir, data)
  if writer:  # after every check: a refused command changes nothing
    record_config(os.path.join(workdir, "config.json"), config)


def check_eval_splits(config: ml_collections.ConfigDict, data) -> None:
  """Validation is always read (AMCB, the reward, the curves); test when eval.test is on."""
  own = data.name in ("arrays", "items")  # examples.csv names the splits
  if len(data.val) == 0:
    raise ConfigError(
        ("examples.csv has no val rows; " if own else
         f"config.data.val_size={config.data.val_size} leaves no validation set; ")
        + "AMCB, RL-MBA's reward and every learning curve read a labelled validation set: "
        + ("add labelled rows with split val" if own else "set a validation size"))
  if config.eval.test and len(data.test) == 0:
    raise ConfigError(
        ("examples.csv has no test rows; add labelled rows with split test"
         if own else f"config.data.test_size={config.data.test_size} leaves no test set; "
         "set a test size") + ", or set config.eval.test=False to run without one")


def load_data(config: ml_collections.ConfigDict):
  """The data set's splits (process 0 builds the prepared copy once, the others then read
  it); a ``DataError`` naming the data set for anything wrong with the data."""
  try:
    show = jax.process_index() == 0 and progress_wanted(config.eval.progress)
    return parallel.process_zero_first(lambda: load_dataset(config.data, progress=show),
                                       "load_dataset")
  except (OSError, ValueError, RuntimeError) as e:
    if isinstance(e, (RunError, ConfigError)):
      raise
    raise DataError(f"data set {config.data.name!r}: {e}") from e


def check_own_encoders(config: ml_collections.ConfigDict, data) -> None:
  """Your own encoders (``module.path:ClassName`` in ``model.encoders``) traced once on an
  abstract batch, so one that returns the wrong shape is a ``ConfigError`` before any
  work, not a traceback in round 0's training."""
  if not any(is_own_encoder(n) for n in encoder_names(config.model).values()):
    return
  model = build_model(config.model, data.modalities, data.num_classes)
  example = {s.name: jax.ShapeDtypeStruct(
      (2,) + tuple(s.shape), jnp.int32 if s.kind == "tokens" else jnp.float32)
      for s in data.modalities}
  keys = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
  try:
    jax.eval_shape(lambda x: model.init(keys, x, train=True), example)
  except (ValueError, TypeError) as e:
    raise ConfigError(f"model.encoders={config.model.encoders!r}: {e}") from None


def make_run_env(config: ml_collections.ConfigDict, data, mesh, epoch_callback=None,
                  seeds: SeedBatch | None = None) -> RoundEnv:
  """The model, the trainer and the data set's splits on the mesh, as a ``RoundEnv``."""
  model = build_model(config.model, data.modalities, data.num_classes)
  if data.vocab_size and model.bert_config and data.vocab_size > model.bert_config.vocab_size:
    raise WorkdirError(
        f"the text vocabulary has {data.vocab_size} tokens but the BERT encoder embeds "
        f"{model.bert_config.vocab_size}; set config.model.bert.vocab_size (or use the "
        "vocabulary of the pretrained weights, config.data.vocab)")
  trainer = make_trainer(config, model, data, mesh, epoch_callback)
  # With config.eval.test off (hyper-parameter search) the test split never reaches the
  # device and no record or summary holds a test figure.
  splits = (("val", data.val), ("test", data.test)) if config.eval.test else (("val", data.val),)
  evals = {split: (trainer.put(arrays), parallel.put_replicated(arrays.labels, mesh))
           for split, arrays in splits}
  return make_env(config, model, trainer, data.modality_names, data.num_classes,
                  len(data.pool), trainer.put(data.pool), trainer.put_labels(data.pool), evals,
                  seeds)


def resume(env: RoundEnv, mesh, checkpointer: RoundCheckpointer
            ) -> tuple[RoundState, list[list[dict[str, Any]]], int]:
  """(state, each seed's history, first round to run) from the latest checkpoint, or a
  fresh start."""
  config, seeds = env.config, env.seeds
  target = initial_state(env, mesh)
  latest = checkpointer.latest_round()
  if latest is None:
    state = target._replace(train=None)
    if env.agent is not None and config.al.rlmba.init_from:
      state = state._replace(policy=initial_policy(env, target, mesh))
    return state, [[] for _ in seeds.seeds], 0
  tree, meta = checkpointer.restore(latest, target.checkpoint())
  if seeds.batched:
    stored = meta.get("histories", {})
    if meta.get("seeds") != list(seeds.seeds) or set(stored) != {str(s) for s in seeds.seeds}:
      raise WorkdirError(f"checkpoint {latest} holds seeds {meta.get('seeds')}, not "
                         f"{list(seeds.seeds)}; the checkpoint is inconsistent. Move "
                         "checkpoints/ away to restart.")
    histories = [list(stored[str(s)]) for s in seeds.seeds]
  else:
    histories = [list(meta["history"])]
  if any(len(h) != latest + 1 for h in histories):
    raise WorkdirError(f"checkpoint {latest} holds {len(histories[0])} rounds of history; "
                       "the checkpoint is inconsistent. Move checkpoints/ away to restart.")
  return RoundState.from_checkpoint(tree), histories, latest + 1


def initial_policy(env: RoundEnv, target: RoundState, mesh):
  """The policy ``al.rlmba.init_from`` names (a pretraining, or an earlier single RL-MBA
  run's latest policy), for every seed."""
  config, seeds = env.config, env.seeds
  source = config.al.rlmba.init_from
  if checkpoint.is_pretraining(source):
    params = checkpoint.load_pretrained_params(
        source, config.al.rlmba.hidden, config.al.rlmba.policy_inputs,
        seeds.take(target.policy.params, 0),
        prior_temperature=config.al.rlmba.prior_temperature)
    policy = env.agent.start_from(params)
    return policy if seeds.batched else parallel.put_replicated(policy, mesh)
  if not seeds.batched:
    return load_policy(source, target.checkpoint())
  one = jax.tree.map(lambda x: x[0], target.checkpoint())
  return seeds.tile(load_policy(source, one))
