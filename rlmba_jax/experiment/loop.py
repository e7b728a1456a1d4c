"""The active-learning loop: select -> label -> retrain -> evaluate, with exact resume.

Workdir layout::

  config.json     the config the run was started with (resuming checks it)
  ledger.jsonl    one line per round: the example ids labelled in that round (round 0 =
                  the initial set); append-only, fsync'ed, the record of what was labelled
  rounds.jsonl    one line of metrics per finished round
  summary.json    the learning curve and the final metrics
  checkpoints/    Orbax round checkpoints (state + metric history)

Commit order inside round r: ledger line r -> train -> evaluate -> checkpoint r ->
rounds.jsonl line r. On restart the latest checkpoint is the truth: ``rounds.jsonl`` is
rewritten from its history, and a ledger line without a checkpoint (selected, not trained)
is honoured as it stands, so a run killed at any point ends with the same ledger and metrics
as one that was never interrupted.
"""

from __future__ import annotations

import functools
import json
import os
import time
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import logging

from rlmba_jax import modality
from rlmba_jax import parallel
from rlmba_jax import policy as policy_lib
from rlmba_jax import selection
from rlmba_jax.data import Ledger, LedgerError, load_dataset
from rlmba_jax.experiment import io
from rlmba_jax.experiment.checkpoint import RoundCheckpointer
from rlmba_jax.experiment.config import (check_budget, config_differences, strategy_options,
                                         validate_config)
from rlmba_jax.models import build_model, fuse_with_weights, make_fused_head
from rlmba_jax.models.classifier import fused_head_kind
from rlmba_jax.models.pretrained import (PretrainedWeightsError, convert_state_dict,
                                         load_safetensors)
from rlmba_jax.selection.diagnostics import selection_diagnostics
from rlmba_jax.train import (Trainer, classification_metrics, make_loss, make_optimizer, top1)
from rlmba_jax.train.streaming import StreamingTrainer
from rlmba_jax.train.trainer import parse_assignments, schedule_from_config

logging = logging.getLogger(__name__)

# Purposes a round's key is split into (fold_in constants: never change their values).
_INIT, _TRAIN, _SELECT, _MC_DROPOUT, _POLICY = 0, 1, 2, 3, 4

PhaseCallback = Callable[[int, str], None]


class WorkdirError(RuntimeError):
  pass


def round_keys(seed: int, round_index: int) -> dict[str, jax.Array]:
  """The keys of one round, derived from the seed alone (nothing advanced is stored)."""
  round_key = jax.random.fold_in(jax.random.key(seed), round_index)
  return {"init": jax.random.fold_in(round_key, _INIT),
          "train": jax.random.fold_in(round_key, _TRAIN),
          "select": jax.random.fold_in(round_key, _SELECT),
          "mc_dropout": jax.random.fold_in(round_key, _MC_DROPOUT),
          "policy": jax.random.fold_in(round_key, _POLICY)}


def _check_workdir(workdir: str, config: ml_collections.ConfigDict) -> None:
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    if os.path.exists(os.path.join(workdir, "ledger.jsonl")):
      raise WorkdirError(f"{workdir} holds a ledger.jsonl but no config.json; it is not a "
                         "workdir of this tool. Choose another --workdir.")
    return
  try:
    with open(path) as f:
      stored = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise WorkdirError(f"{path} is unreadable ({e}); nothing was changed. Restore it or "
                       "choose another --workdir.") from e
  diffs = config_differences(stored, config)
  if diffs:
    raise WorkdirError(
        f"{workdir} holds a run with a different config; nothing was changed. Use another "
        "--workdir, or the same config (only al.rounds may grow). Differences:\n  "
        + "\n  ".join(diffs))


def _coalition_probabilities_fn(model_cfg, names: tuple[str, ...]):
  """``(outputs, weights) -> [2^M, B, C]`` fused probabilities of every modality coalition."""
  masks = jnp.asarray(modality.coalition_masks(len(names)))

  fused_kind = fused_head_kind(model_cfg.head, model_cfg.fusion, model_cfg.fused_head)

  def coalitions(outputs, weights):
    return modality.coalition_probabilities(
        outputs, masks, modalities=names, head=fused_kind, fusion=model_cfg.fusion,
        evidence_activation=model_cfg.evidence_activation, modality_weights=weights)

  return coalitions


def _make_agent(config: ml_collections.ConfigDict, names: tuple[str, ...], pool_size: int):
  """The RL-MBA agent and reference curve, or (None, None) for the other strategies."""
  if config.al.strategy != "rlmba" or not config.al.rlmba.policy:
    return None, None
  options = config.al.rlmba.to_dict()
  agent = policy_lib.RLMBAAgent(options, names, config.al.budget_per_round, pool_size)
  references = None
  if options["reward"] == "relative":
    paths = [p.strip().replace("{seed}", str(config.seed))
             for p in options["reference_runs"].split(",") if p.strip()]
    try:
      references = policy_lib.load_reference_curves(paths)
    except policy_lib.ReferenceRunError as e:
      raise WorkdirError(str(e)) from e
    schedule = [config.al.initial_size + r * config.al.budget_per_round
                for r in range(1, config.al.rounds + 1)]
    missing = [n for n in schedule if n not in references]
    if missing:
      raise WorkdirError(
          f"the reference runs {paths} have no val_top1 at {missing} labels, which this "
          "schedule reaches; run them with the same al.initial_size, al.budget_per_round "
          "and at least as many rounds")
  return agent, references


def _load_policy(workdir: str, target: dict[str, Any]):
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
  logging.info("policy warm-started from %s (round %d)", workdir, latest)
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


def make_trainer(config: ml_collections.ConfigDict, model, data, mesh) -> Trainer:
  """A ``Trainer`` (in-memory data) or ``StreamingTrainer`` (record data sets)."""
  kwargs = dict(batch_size=config.train.batch_size, num_epochs=config.train.num_epochs,
                eval_batch_size=config.train.eval_batch_size, mesh=mesh,
                loss_fn=make_loss(config.model, config.train),
                schedule=schedule_from_config(config.train),
                init_hook=pretrained_hook(config.model))
  if data.streamed:
    return StreamingTrainer(model, make_optimizer(config.train),
                            train_transform=data.train_transform,
                            eval_transform=data.eval_transform,
                            data_workers=config.train.data_workers, **kwargs)
  return Trainer(model, make_optimizer(config.train), **kwargs)


def make_pool_view_builder(config: ml_collections.ConfigDict, model, trainer: Trainer,
                           names: tuple[str, ...]):
  """``(train_state, weights, labelled, pool_inputs, key, outputs=None) -> PoolView`` for
  the configured strategy, with the optional fields it ``needs`` filled in (dropout passes,
  coalition probabilities, the fused head).

  ``outputs``: the pool outputs of the same parameters under any modality weights (the
  last evaluation's), which saves a pass over the pool. With the ``evidence`` fusion the
  fused outputs are always recomputed for ``weights`` by one function
  (``models.fuse_with_weights``), so a given and a fresh prediction give the same view.
  """
  needs = selection.strategy_needs(config.al.strategy)
  fused_head = make_fused_head(model) if "fused_head" in needs else None
  coalitions = jax.jit(_coalition_probabilities_fn(config.model, names))
  reweight = (jax.jit(functools.partial(fuse_with_weights, names=names))
              if config.model.fusion == "evidence" else None)

  def build(train_state, weights, labelled, pool_inputs, key, outputs=None):
    params, model_state = train_state.params, train_state.model_state
    if outputs is None:
      outputs = trainer.predict(params, pool_inputs, weights, model_state)
    if reweight is not None:
      outputs = reweight(outputs, modality_weights=weights)
    extra = {}
    if "mc_probs" in needs:
      extra["mc_probs"] = trainer.predict_mc(params, pool_inputs, key,
                                             config.al.bald.passes, weights, model_state)
    if "coalition_probs" in needs:
      extra["coalition_probs"] = coalitions(outputs, weights)
    if "fused_head" in needs:
      extra["head_params"] = {"params": params, "modality_weights": weights}
      extra["fused_head"] = fused_head
    if "evidential" in needs and "alpha" in outputs:
      extra["modality_alphas"] = outputs["alpha"]
      extra["fused_alpha"] = outputs.get("fused_alpha")
    if "modality_weights" in needs:
      extra["modality_weights"] = weights
    return selection.PoolView(outputs["fused_probs"], outputs["probs"], outputs["features"],
                              labelled, modality_names=names, **extra)

  return build


def make_diagnose(config: ml_collections.ConfigDict, names: tuple[str, ...],
                  num_classes: int):
  """``(key, outputs, weights, labelled, positions, labels) -> dict`` of plain numbers:
  ``selection.diagnostics.selection_diagnostics`` of the picks on the model that chose
  them (the view RL-MBA's scorer would see, whatever the strategy)."""
  o = config.al.rlmba
  efda = o.efda and config.model.head == "evidential"
  reweight = config.model.fusion == "evidence"

  @jax.jit
  def diagnose(key, outputs, weights, labelled, positions, labels):
    if reweight:
      outputs = fuse_with_weights(outputs, names, weights)
    view = selection.PoolView(outputs["fused_probs"], outputs["probs"], outputs["features"],
                              labelled, modality_alphas=outputs.get("alpha"),
                              modality_weights=weights, modality_names=names)
    return selection_diagnostics(key, view, positions, labels, num_classes=num_classes,
                                 kappa=o.kappa, beta=o.beta, efda=efda,
                                 lloyd_iterations=o.lloyd_iterations,
                                 diversity=o.diversity)

  def run_diagnose(key, outputs, weights, labelled, positions, labels):
    out = _to_python(diagnose(key, outputs, weights, labelled, jnp.asarray(positions),
                              labels))
    out["rank_uncertainty"] = dict(zip(names, out["rank_uncertainty"]))
    return out

  return run_diagnose


@jax.jit
def _evaluate(outputs: Mapping[str, Any], labels: jnp.ndarray) -> dict[str, Any]:
  metrics = classification_metrics(outputs["fused_probs"], labels)
  metrics["per_modality_top1"] = {m: top1(p, labels) for m, p in outputs["probs"].items()}
  return metrics


def make_modality_analysis(model_cfg, names: tuple[str, ...]):
  """``(val_outputs, val_labels, weights) -> (top1_gap [M], shapley [M])``, jitted.

  Shapley values: each modality's exact contribution to the fused head's probability of the
  true class (all 2^M coalitions, absent modalities masked), averaged over the examples.
  """
  coalitions = _coalition_probabilities_fn(model_cfg, names)

  @jax.jit
  def analyse(outputs, labels, weights):
    fused_top1 = top1(outputs["fused_probs"], labels)
    modality_top1 = jnp.stack([top1(outputs["probs"][m], labels) for m in names])
    coalition_probs = coalitions(outputs, weights)
    shapley = modality.shapley_values(modality.true_class_values(coalition_probs, labels))
    return modality.top1_gap(modality_top1, fused_top1), jnp.mean(shapley, axis=-1)

  return analyse


@functools.partial(jax.jit, static_argnums=3)
def _pool_uncertainty(outputs: Mapping[str, Any], labelled: jnp.ndarray, weights: jnp.ndarray,
                      names: tuple[str, ...]) -> jnp.ndarray:
  """Mean EFDA difficulty U(x) over the unlabelled pool: the Dirichlet variance of the
  weighted evidence fusion of the modality heads (``selection.efda_difficulty``)."""
  u = selection.efda_difficulty(outputs["alpha"], names, weights)
  unlabelled = (~labelled).astype(u.dtype)
  return jnp.sum(u * unlabelled) / jnp.maximum(jnp.sum(unlabelled), 1.0)


def _to_python(tree: Any) -> Any:
  return jax.tree.map(lambda x: float(x) if np.ndim(x) == 0 else np.asarray(x).tolist(),
                      jax.device_get(tree))


def area_under_curve(num_labeled: list[int], top1: list[float]) -> float:
  """Trapezoidal area under test top-1 vs labels, divided by the label range (in [0, 1])."""
  if len(num_labeled) < 2:
    return float(top1[0]) if top1 else float("nan")
  x, y = np.asarray(num_labeled, float), np.asarray(top1, float)
  return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2) / (x[-1] - x[0]))


def run(config: ml_collections.ConfigDict, workdir: str, *,
        phase_callback: PhaseCallback | None = None) -> dict[str, Any]:
  """Runs (or continues) the active-learning experiment described by ``config``.

  Args:
    config: an ml_collections config built from ``experiment.config.default_config()``.
    workdir: output folder; an existing run there is continued.
    phase_callback: called as ``(round, phase)`` after each durable step, phases
      ``"labelled"``, ``"trained"``, ``"checkpointed"``, ``"reported"`` (progress bars,
      notebooks, fault-injection tests).

  Returns:
    The summary written to ``summary.json``.
  """
  t_start = time.time()
  validate_config(config)
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  _check_workdir(workdir, config)
  # Process 0 builds the data set's prepared copy once; the others then read it.
  data = parallel.process_zero_first(lambda: load_dataset(config.data), "load_dataset")
  check_budget(config, len(data.pool))
  writer = jax.process_index() == 0
  if writer and not os.path.exists(os.path.join(workdir, "config.json")):
    io.write_atomic(os.path.join(workdir, "config.json"), config.to_json(indent=2) + "\n")

  mesh = parallel.make_mesh(config.num_devices)
  model = build_model(config.model, data.modalities, data.num_classes)
  if data.vocab_size and model.bert_config and data.vocab_size > model.bert_config.vocab_size:
    raise WorkdirError(
        f"the text vocabulary has {data.vocab_size} tokens but the BERT encoder embeds "
        f"{model.bert_config.vocab_size}; set config.model.bert.vocab_size (or use the "
        "vocabulary of the pretrained weights, config.data.vocab)")
  trainer = make_trainer(config, model, data, mesh)
  names = data.modality_names
  analyse = make_modality_analysis(config.model, names)
  amcb = dict(temperature=config.modality.temperature, floor=config.modality.floor,
              momentum=config.modality.momentum)
  pool_inputs = trainer.put(data.pool)
  pool_labels = trainer.put_labels(data.pool)
  # With config.eval.test off (hyper-parameter search) the test split never reaches the
  # device and no record or summary holds a test figure.
  splits = (("val", data.val), ("test", data.test)) if config.eval.test else (("val", data.val),)
  evals = {split: (trainer.put(arrays), parallel.put_replicated(arrays.labels, mesh))
           for split, arrays in splits}
  example = trainer.example(pool_inputs)
  num_pool = len(data.pool)
  strategy_fn = jax.jit(functools.partial(selection.get_strategy(config.al.strategy),
                                          **strategy_options(config)), static_argnums=2)
  build_view = make_pool_view_builder(config, model, trainer, names)
  initial_fn = jax.jit(selection.get_strategy("random"), static_argnums=2)
  position_of = {int(i): p for p, i in enumerate(data.pool.ids)}
  agent, references = _make_agent(config, names, len(data.pool))
  diagnose = (make_diagnose(config, names, data.num_classes) if config.al.diagnostics
              else None)

  ledger = Ledger(os.path.join(workdir, "ledger.jsonl"))
  checkpointer = RoundCheckpointer(os.path.join(workdir, "checkpoints"),
                                   config.checkpoint.max_to_keep)
  rounds_path = os.path.join(workdir, "rounds.jsonl")
  try:
    entries = ledger.read() if writer else []
  except LedgerError as e:
    raise WorkdirError(str(e)) from e

  target = {"train": trainer.init(round_keys(config.seed, 0)["init"], example),
            "labelled": parallel.put_replicated(np.zeros(num_pool, bool), mesh),
            "modality_weights": parallel.put_replicated(modality.amcb_init(len(names)), mesh)}
  if agent is not None:
    # Replicated like everything the policy meets, so its steps compile once per run.
    target["policy"] = parallel.put_replicated(
        agent.init(round_keys(config.seed, 0)["policy"]), mesh)
  latest = checkpointer.latest_round()
  if latest is None:
    state, history, start = None, [], 0
    labelled = target["labelled"]
    weight_state = target["modality_weights"]
    policy_state = target.get("policy")
    if agent is not None and config.al.rlmba.init_from:
      policy_state = _load_policy(config.al.rlmba.init_from, target)
  else:
    state, meta = checkpointer.restore(latest, target)
    history, start = list(meta["history"]), latest + 1
    labelled = state["labelled"]
    weight_state = state["modality_weights"]
    policy_state = state.get("policy")
    if len(history) != start:
      raise WorkdirError(f"checkpoint {latest} holds {len(history)} rounds of history; "
                         "the checkpoint is inconsistent. Move checkpoints/ away to restart.")
  if writer and not start <= len(entries) <= start + 1:
    raise WorkdirError(
        f"{ledger.path} records {len(entries)} rounds but the latest checkpoint is "
        f"{'none' if latest is None else latest}; the ledger and checkpoints disagree. "
        "Nothing was changed; restore the workdir or start a new one.")
  if writer:
    io.write_jsonl(rounds_path, history)  # the checkpoint's history is the truth

  total_rounds = config.al.rounds
  if start > total_rounds:
    logging.info("%s is complete (%d rounds); raise al.rounds to continue.", workdir,
                 start - 1)
  pool_outputs = None  # the last evaluation's pool outputs (evidential heads), reused once
  for r in range(start, total_rounds + 1):
    keys = round_keys(config.seed, r)
    t0 = time.time()
    transition = diagnostics = None
    if diagnose is not None and r > 0 and pool_outputs is None:
      pool_outputs = trainer.predict(state["train"].params, pool_inputs, weight_state.weights,
                                     state["train"].model_state)
    if agent is not None and r > 0:
      # The policy's draw is recomputed even when the ledger already holds this round, so
      # the REINFORCE update after a resume is the one an uninterrupted run makes.
      view = build_view(state["train"], weight_state.weights, labelled, pool_inputs,
                        keys["mc_dropout"], pool_outputs)
      drawn, transition, candidate_positions = agent.select(
          policy_state, keys["select"], keys["policy"], view, history[-1],
          float(jnp.mean(labelled)))
      drawn = np.asarray(jax.device_get(drawn), np.int32)
      candidate_positions = np.asarray(jax.device_get(candidate_positions))
    if r < len(entries):
      ids = [int(i) for i in entries[r]["ids"]]
      unknown = [i for i in ids if i not in position_of]
      if unknown:
        raise WorkdirError(f"ledger round {r} names ids {unknown[:5]} that are not in the "
                           "pool of this data split")
      positions = np.asarray([position_of[i] for i in ids], np.int32)
      logging.info("round %d: using the %d ids already in the ledger", r, len(ids))
      if transition is not None and not np.array_equal(positions, drawn):
        transition = agent.transition_for(transition, candidate_positions, positions)
        if transition is None:
          raise WorkdirError(
              f"ledger round {r} holds examples the RL-MBA policy could not have drawn "
              "from this round's candidates; the workdir was not produced by this config")
    else:
      if r == 0:
        view = selection.PoolView(None, {}, {}, labelled)
        positions = initial_fn(keys["select"], view, config.al.initial_size)
      elif transition is not None:
        positions = drawn
      else:
        view = build_view(state["train"], weight_state.weights, labelled, pool_inputs,
                          keys["mc_dropout"], pool_outputs)
        positions = strategy_fn(keys["select"], view, config.al.budget_per_round)
      positions = np.asarray(jax.device_get(positions), np.int32)
      ids = [int(i) for i in data.pool.ids[positions]]
      if len(set(ids)) != len(ids) or np.asarray(jax.device_get(labelled))[positions].any():
        raise RuntimeError(f"round {r}: the strategy returned repeated or already labelled "
                           "examples; this is a bug in the strategy")
      if writer:
        ledger.append(r, ids)
    select_seconds = time.time() - t0
    if diagnose is not None and r > 0:
      diagnostics = diagnose(keys["select"], pool_outputs, weight_state.weights, labelled,
                             positions, pool_labels)
    view = pool_outputs = None  # free the pool-sized arrays before training
    if phase_callback:
      phase_callback(r, "labelled")

    labelled = labelled.at[positions].set(True)
    t1 = time.time()
    if config.train.warm_start and state is not None:
      train_state = trainer.fresh_optimizer(state["train"])
    else:
      train_state = trainer.init(keys["init"], example)
    train_weights = weight_state.weights
    train_state, train_log = trainer.train(train_state, keys["train"], pool_inputs,
                                           pool_labels, labelled, train_weights)
    jax.block_until_ready(train_state)
    train_seconds = time.time() - t1
    if phase_callback:
      phase_callback(r, "trained")

    t2 = time.time()
    outputs = {split: trainer.predict(train_state.params, x, train_weights,
                                      train_state.model_state)
               for split, (x, _) in evals.items()}
    metrics = {split: _to_python(_evaluate(outputs[split], evals[split][1]))
               for split in evals}
    gap, shapley = analyse(outputs["val"], evals["val"][1], train_weights)
    contributions = gap if config.modality.contribution == "top1_gap" else shapley
    if config.modality.favour == "weaker":
      contributions = -contributions
    if config.modality.amcb:
      weight_state = modality.amcb_update(weight_state, contributions, **amcb)
    pool_uncertainty = pool_outputs = None
    if config.model.head == "evidential":
      pool_outputs = trainer.predict(train_state.params, pool_inputs, train_weights,
                                     train_state.model_state)
      pool_uncertainty = float(_pool_uncertainty(pool_outputs, labelled, train_weights, names))
    log = _to_python(train_log)
    as_dict = lambda v: dict(zip(names, _to_python(v)))
    test = metrics.get("test")  # None when config.eval.test is off (tuning)
    record = {"round": r, "num_labeled": int(jnp.sum(labelled)),
              "strategy": config.al.strategy, "seed": int(config.seed)}
    if test:
      record.update(test_top1=test["top1"], test_nll=test["nll"], test_ece=test["ece"])
    record.update(val_top1=metrics["val"]["top1"], val_nll=metrics["val"]["nll"],
                  val_ece=metrics["val"]["ece"])
    if test:
      record.update(test_macro_f1=test["macro_f1"],
                    per_class_test_top1=[None if np.isnan(v) else v
                                         for v in test["per_class_top1"]],
                    per_modality_test_top1=test["per_modality_top1"])
    record.update({
        "per_modality_val_top1": metrics["val"]["per_modality_top1"],
        "top1_gap": as_dict(gap), "shapley": as_dict(shapley),
        "balance": float(modality.modality_balance(shapley)),
        "modality_weights": as_dict(weight_state.weights),
        "pool_uncertainty": pool_uncertainty,
        "train_loss": log.epoch_loss[-1], "train_loss_curve": log.epoch_loss,
        "train_grad_norm": log.epoch_grad_norm[-1], "train_steps": int(log.num_steps),
        "select_seconds": round(select_seconds, 4), "train_seconds": round(train_seconds, 4),
        "eval_seconds": round(time.time() - t2, 4),
    })
    if diagnostics is not None:
      record["selection"] = diagnostics
    if transition is not None:
      try:
        raw_reward = agent.reward(record, history, references)
      except policy_lib.ReferenceRunError as e:
        raise WorkdirError(str(e)) from e
      policy_state, info = agent.update(policy_state, transition, raw_reward)
      record["policy"] = info
    history.append(record)
    state = {"train": train_state, "labelled": labelled, "modality_weights": weight_state}
    if agent is not None:
      state["policy"] = policy_state
    checkpointer.save(r, state, {"history": history})
    if phase_callback:
      phase_callback(r, "checkpointed")
    if writer:
      io.append_jsonl(rounds_path, record)
    if phase_callback:
      phase_callback(r, "reported")
    logging.info("round %d/%d | %s | labels %d | test top-1 %s | val top-1 %.4f | "
                 "select %.2fs train %.2fs", r, total_rounds, config.al.strategy,
                 record["num_labeled"],
                 f"{record['test_top1']:.4f}" if test else "(not read)", record["val_top1"],
                 select_seconds, train_seconds)

  checkpointer.close()
  counts = [h["num_labeled"] for h in history]
  summary = {"strategy": config.al.strategy, "seed": int(config.seed),
             "data": config.data.name, "rounds": len(history) - 1, "num_labeled": counts}
  if config.eval.test:
    summary["test_top1"] = [h["test_top1"] for h in history]
  summary["final"] = ({k: v for k, v in history[-1].items() if k != "train_loss_curve"}
                      if history else {})
  if config.eval.test:
    summary["area_under_curve"] = area_under_curve(counts, summary["test_top1"])
  else:
    summary["val_area_under_curve"] = area_under_curve(counts,
                                                       [h["val_top1"] for h in history])
  summary["devices"] = [str(d) for d in mesh.devices.flat]
  summary["seconds_this_invocation"] = round(time.time() - t_start, 3)
  if writer:
    io.write_json(os.path.join(workdir, "summary.json"), summary)
  return summary
