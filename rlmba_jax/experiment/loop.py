"""The active-learning loop: select -> label -> retrain -> evaluate, with exact resume.

Workdir layout::

  config.json     the config the run was started with (resuming checks it)
  ledger.jsonl    one line per round: the example ids labelled in that round (round 0 =
                  the initial set) and a digest chained to the line before; append-only,
                  fsync'ed, the record of what was labelled (and, with a person as the
                  oracle, of what the person answered)
  queries/, labels/  with ``al.oracle="person"``: each round's queries and answers
                  (``experiment.oracle``)
  rounds.jsonl    one line of metrics per finished round
  summary.json    the learning curve and the final metrics
  checkpoints/    Orbax round checkpoints (state + metric history + array checksum)
  .lock           held by the running process (one writer per workdir)

Commit order inside round r: ledger line r -> train -> evaluate -> checkpoint r ->
rounds.jsonl line r. On restart the latest checkpoint is the truth: ``rounds.jsonl`` is
rewritten from its history, its labelled set must be the one the ledger's earlier lines
name, and ledger lines after it (selected, not trained) are honoured as they stand, so a
run killed at any point ends with the same ledger and metrics as one that was never
interrupted.
"""

from __future__ import annotations

import collections
import logging
import os
import time
from typing import Any, Callable

import jax
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from rlmba_jax import compilation_cache
from rlmba_jax import parallel
from rlmba_jax.data import load_dataset
from rlmba_jax.data.specs import parse_assignments
from rlmba_jax.experiment import io
from rlmba_jax.experiment import oracle as oracle_lib
from rlmba_jax.experiment import pretrain
from rlmba_jax.experiment.checkpoint import RoundCheckpointer
from rlmba_jax.experiment.config import check_budget, config_differences, validate_config
from rlmba_jax.experiment.errors import ConfigError, DataError, RunError, WorkdirError
from rlmba_jax.experiment.ledger import Ledger
from rlmba_jax.experiment.metrics import RoundLogger
from rlmba_jax.experiment.progress import RunProgress, progress_wanted
from rlmba_jax.experiment.asking import PersonOracle, check_oracle
from rlmba_jax.experiment.oracle import Person
from rlmba_jax.experiment.rounds import (RoundEnv, RoundState, evaluate_round,
                                         initial_state, make_env, round_keys, round_record,
                                         select_round, train_round, update_modality_weights,
                                         update_policy)
from rlmba_jax.experiment.workdir import claim, read_stored_json
from rlmba_jax.models import build_model
from rlmba_jax.models.pretrained import (PretrainedWeightsError, convert_state_dict,
                                         load_safetensors)
from rlmba_jax.train import Trainer, make_loss, make_optimizer
from rlmba_jax.train.streaming import StreamingTrainer
from rlmba_jax.train.trainer import schedule_from_config

logger = logging.getLogger(__name__)

PhaseCallback = Callable[[int, str], None]

__all__ = ["RoundState", "WorkdirError", "area_under_curve", "make_trainer",
           "pretrained_hook", "round_keys", "run"]


def _check_workdir(workdir: str, config: ml_collections.ConfigDict) -> None:
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    if os.path.exists(os.path.join(workdir, "ledger.jsonl")):
      raise WorkdirError(f"{workdir} holds a ledger.jsonl but no config.json; it is not a "
                         "workdir of this tool. Choose another --workdir.")
    return
  diffs = config_differences(read_stored_json(path), config)
  if diffs:
    raise WorkdirError(
        f"{workdir} holds a run with a different config; nothing was changed. Use another "
        "--workdir, or the same config (only al.rounds may grow). Differences:\n  "
        + "\n  ".join(diffs))


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
# program again (on 2 CPU cores, 2.8 s of a 4.5 s tiny mfeat run with a warm compilation
# cache; the default mfeat run's second time in a process: 21.9 s -> 12.8 s).
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


def area_under_curve(num_labeled: list[int], top1: list[float]) -> float:
  """Trapezoidal area under test top-1 vs labels, divided by the label range (in [0, 1])."""
  if len(num_labeled) < 2:
    return float(top1[0]) if top1 else float("nan")
  x, y = np.asarray(num_labeled, float), np.asarray(top1, float)
  return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2) / (x[-1] - x[0]))


def finished_line(summary: dict[str, Any], workdir: str) -> str:
  """The one line a finished run prints: strategy, seed, final top-1, labels, workdir."""
  final = summary["final"]
  metric = "test" if "test_top1" in final else "val"
  return (f"done: {summary['strategy']} seed {summary['seed']}: {metric} top-1 "
          f"{final.get(f'{metric}_top1', float('nan')):.4f} with "
          f"{final.get('num_labeled', 0)} labels; outputs in {workdir}")


def run(config: ml_collections.ConfigDict, workdir: str, *,
        phase_callback: PhaseCallback | None = None, person: Person | None = None,
        close_round: bool = False) -> dict[str, Any]:
  """Runs (or continues) the active-learning experiment described by ``config``.

  Compiled programs are cached on disk unless switched off (``rlmba_jax.compilation_cache``).
  Everything that can be checked without the disk (the config, the device count) is checked
  before the workdir is touched; a run that fails before its first commit leaves no workdir
  behind, and one process at a time may run in a workdir (``experiment.workdir``).

  Args:
    config: an ml_collections config built from ``experiment.config.default_config()``.
    workdir: output folder; an existing run there is continued.
    phase_callback: called as ``(round, phase)`` after each durable step, phases
      ``"labelled"``, ``"trained"``, ``"checkpointed"``, ``"reported"`` (progress bars,
      notebooks, fault-injection tests); with a person as the oracle also ``"asked"``
      once a round's queries file is written.
    person: with ``al.oracle="person"``, called as ``(queries_file, labels_file, round)``
      to answer a round before the run would stop for one (``oracle.SimulatedPerson``).
    close_round: with ``al.oracle="person"``, end the waiting round with the answers given
      so far (the unanswered items go back to the pool).

  Returns:
    The summary written to ``summary.json``.

  Raises:
    The errors of ``experiment.errors`` (each with its exit code), never after damaging
    what was committed.
  """
  t_start = time.time()
  compilation_cache.enable()
  validate_config(config)
  try:
    mesh = parallel.make_mesh(config.num_devices)
  except ValueError as e:
    raise ConfigError(f"config.num_devices={config.num_devices}: {e}") from None
  workdir = os.path.abspath(workdir)
  writer = jax.process_index() == 0
  with claim(workdir, lock=writer):
    _check_workdir(workdir, config)
    data = _load_data(config)
    check_budget(config, len(data.pool))
    _check_eval_splits(config, data)
    check_oracle(config, data)
    if writer and not os.path.exists(os.path.join(workdir, "config.json")):
      io.write_atomic(os.path.join(workdir, "config.json"), config.to_json(indent=2) + "\n")
    asker = (PersonOracle(workdir, data, person, close_round)
             if config.al.oracle == "person" else None)
    return _run_rounds(config, workdir, data, mesh, phase_callback or (lambda r, p: None),
                       t_start, asker)


def _run_rounds(config, workdir: str, data, mesh, phase: PhaseCallback, t_start: float,
                asker: PersonOracle | None = None) -> dict[str, Any]:
  """Resumes from the latest checkpoint, replays the ledger's later lines, runs the rest."""
  writer = jax.process_index() == 0
  bars = RunProgress(writer and progress_wanted(config.eval.progress),
                     strategy=config.al.strategy, num_epochs=config.train.num_epochs)
  env = _make_run_env(config, data, mesh, bars.epoch_callback if bars.enabled else None)
  ledger = Ledger(os.path.join(workdir, "ledger.jsonl"))
  checkpointer = RoundCheckpointer(os.path.join(workdir, "checkpoints"),
                                   config.checkpoint.max_to_keep)
  rounds_path = os.path.join(workdir, "rounds.jsonl")
  state, history, start = _resume(env, mesh, checkpointer)
  env, pending = _replay_ledger(env, ledger, asker, start, data, state)
  if writer:
    io.write_jsonl(rounds_path, history)  # the checkpoint's history is the truth
  board = RoundLogger(workdir, enabled=writer and config.eval.tensorboard)
  board.start(history)
  if start > config.al.rounds:
    logger.info("%s is complete (%d rounds); raise al.rounds to continue.", workdir,
                start - 1)
  bars.begin(config.al.rounds, start)
  pool_outputs = None  # the last evaluation's pool outputs (evidential heads), reused once
  try:
    for r in range(start, config.al.rounds + 1):
      given = pending[r - start] if r - start < len(pending) else None
      env, state, record, pool_outputs = _one_round(env, data, state, r, history,
                                                    pool_outputs, given, ledger, asker,
                                                    phase, bars)
      history.append(record)
      checkpointer.save(r, state.checkpoint(), {"history": history})
      phase(r, "checkpointed")
      if writer:
        io.append_jsonl(rounds_path, record)
      phase(r, "reported")
      board.write(record)
      bars.round_done(record)
      _log_round(config, record, bars)
  finally:
    board.close()
    bars.close()
  checkpointer.close()
  summary = _summary(config, history, mesh, t_start)
  if writer:
    io.write_json(os.path.join(workdir, "summary.json"), summary)
  return summary


def _replay_ledger(env: RoundEnv, ledger: Ledger, asker: PersonOracle | None, start: int,
                   data, state: RoundState) -> tuple[RoundEnv, list[np.ndarray]]:
  """Process 0 checks the ledger against the checkpoint (and a person's answers against
  the ledger); every process gets the positions of its lines after the checkpoint
  (selected, not yet trained), which are replayed rather than selected again."""
  pending, refused = None, None
  if jax.process_index() == 0:
    try:
      entries = ledger.read()
      if asker is not None:
        env = asker.replay(env, entries, start)
      pending = _pending_positions(ledger, start, data.pool.ids, state.labelled, entries)
    except WorkdirError as e:
      refused = e
  pending = _share_from_process_zero(pending, refused is not None)
  if refused is not None:
    raise refused
  return env, pending


def _one_round(env: RoundEnv, data, state: RoundState, r: int, history, pool_outputs,
               given, ledger: Ledger, asker: PersonOracle | None, phase: PhaseCallback,
               bars: RunProgress):
  """Round ``r`` up to its checkpoint: select (or replay ``given``), commit the ledger line
  (a person's answers first, with ``asker``), train, evaluate, update the AMCB weights and
  the policy. -> (env, the new state, the round's record, its pool outputs)."""
  config = env.config
  bars.phase(r, "select")
  chooser = state if asker is None else asker.selection_state(env, state, r)
  picked = select_round(env, chooser, r, history, pool_outputs, given)
  positions = picked.positions
  if given is not None:
    logger.info("round %d: using the %d ids already in the ledger", r, len(given))
  elif asker is not None and asker.asks(r):
    bars.phase(r, "waiting for answers")
    picked = asker.ask(env, chooser, r, history, picked, phase)
    ledger.append(r, asker.answers.ids, asker.answers.ledger_fields(data.class_names))
  elif jax.process_index() == 0:
    ledger.append(r, [int(i) for i in data.pool.ids[picked.positions]])
  entry = None
  if asker is not None:
    entry = ledger.read()[r]
    env, positions = asker.commit(env, picked.positions, entry)
  phase(r, "labelled")
  bars.phase(r, "train")
  trained, train_log, train_seconds = train_round(env, state, r, positions)
  phase(r, "trained")
  bars.phase(r, "evaluate")
  evaluation = evaluate_round(env, trained, r)
  weights = update_modality_weights(config, trained.modality_weights, evaluation)
  record = round_record(env, r, trained, weights, evaluation, train_log, picked,
                        train_seconds)
  if entry is not None:
    record.update(asker.round_fields(entry))
  policy = state.policy
  if picked.transition is not None:
    policy, record["policy"] = update_policy(env, policy, picked.transition, record,
                                             history)
  state = trained._replace(modality_weights=weights, policy=policy)
  return env, state, record, evaluation.pool_outputs


def _check_eval_splits(config: ml_collections.ConfigDict, data) -> None:
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


def _load_data(config: ml_collections.ConfigDict):
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


def _make_run_env(config: ml_collections.ConfigDict, data, mesh, epoch_callback=None
                  ) -> RoundEnv:
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
                  len(data.pool), trainer.put(data.pool), trainer.put_labels(data.pool), evals)


def _resume(env: RoundEnv, mesh, checkpointer: RoundCheckpointer
            ) -> tuple[RoundState, list[dict[str, Any]], int]:
  """(state, history, first round to run) from the latest checkpoint, or a fresh start."""
  config = env.config
  target = initial_state(env, mesh)
  latest = checkpointer.latest_round()
  if latest is None:
    state = target._replace(train=None)
    if env.agent is not None and config.al.rlmba.init_from:
      source = config.al.rlmba.init_from
      if pretrain.is_pretraining(source):
        policy = parallel.put_replicated(env.agent.start_from(pretrain.load_pretrained_params(
            source, config.al.rlmba.hidden, config.al.rlmba.policy_inputs,
            target.policy.params)), mesh)
      else:
        policy = _load_policy(source, target.checkpoint())
      state = state._replace(policy=policy)
    return state, [], 0
  tree, meta = checkpointer.restore(latest, target.checkpoint())
  history = list(meta["history"])
  if len(history) != latest + 1:
    raise WorkdirError(f"checkpoint {latest} holds {len(history)} rounds of history; "
                       "the checkpoint is inconsistent. Move checkpoints/ away to restart.")
  return RoundState.from_checkpoint(tree), history, latest + 1


def _pending_positions(ledger: Ledger, start: int, pool_ids: np.ndarray, labelled,
                       entries: list[dict[str, Any]]) -> list[np.ndarray]:
  """The pool positions of the ledger's lines from round ``start`` on (labelled after the
  latest checkpoint), after checking that its earlier lines name exactly the labelled set
  the checkpoint holds (a person's skipped or unanswered items are not labelled)."""
  moved = (f" (a torn last line was moved to {ledger.moved_aside})" if ledger.moved_aside
           else "; nothing was changed")
  if len(entries) < start:
    raise WorkdirError(
        f"{ledger.path} records {len(entries)} rounds but the latest checkpoint is round "
        f"{start - 1}: the ledger lost lines{moved}. Restore the ledger or start a new "
        "workdir.")
  position_of = {int(i): p for p, i in enumerate(pool_ids)}
  positions = []
  for r, entry in enumerate(entries):
    unknown = [int(i) for i in entry["ids"] if int(i) not in position_of]
    if unknown:
      raise WorkdirError(f"ledger round {r} names ids {unknown[:5]} that are not in the "
                         f"pool of this data split{moved}")
    positions.append(np.asarray([position_of[int(i)] for i in entry["ids"]], np.int32))
  mask = np.zeros(len(pool_ids), bool)
  for p, entry in zip(positions[:start], entries):
    mask[p[oracle_lib.answered(entry)]] = True
  restored = np.asarray(jax.device_get(labelled), bool)
  if not np.array_equal(mask, restored):
    raise WorkdirError(
        f"the labelled set of checkpoint {start - 1} ({int(restored.sum())} examples) is not "
        f"the one the ledger's rounds 0-{start - 1} name ({int(mask.sum())}): the ledger or "
        f"the checkpoints were edited or mixed up{moved}. Restore them or start a new "
        "workdir.")
  return positions[start:]


def _share_from_process_zero(positions: list[np.ndarray] | None, refused: bool = False
                             ) -> list[np.ndarray] | None:
  """Process 0's pending ledger lines on every process: only process 0 reads the ledger, and
  every process must replay the same lines rather than select again. ``refused``: process 0
  refused the ledger; the others stop too instead of waiting for it."""
  if jax.process_count() == 1:
    return positions
  count = int(multihost_utils.broadcast_one_to_all(
      np.int32(-1 if refused else len(positions or []))))
  if count < 0:
    if jax.process_index() == 0:
      return None
    raise WorkdirError("process 0 refused the workdir's ledger; its message says why")
  shared = []
  for i in range(count):
    size = int(multihost_utils.broadcast_one_to_all(
        np.int32(len(positions[i]) if positions is not None else 0)))
    mine = positions[i] if positions is not None else np.zeros(size, np.int32)
    shared.append(np.asarray(multihost_utils.broadcast_one_to_all(mine), np.int32))
  return shared


def _log_round(config: ml_collections.ConfigDict, record: dict[str, Any],
               bars: RunProgress) -> None:
  """One line per round: in the log, or above the progress bars when they are shown."""
  test = record.get("test_top1")
  line = (f"round {record['round']}/{config.al.rounds} | {config.al.strategy} | labels "
          f"{record['num_labeled']} | test top-1 "
          f"{'(not read)' if test is None else f'{test:.4f}'} | val top-1 "
          f"{record['val_top1']:.4f} | select {record['select_seconds']:.2f}s train "
          f"{record['train_seconds']:.2f}s")
  if bars.enabled:
    bars.write(line)
  else:
    logger.info("%s", line)


def _summary(config: ml_collections.ConfigDict, history: list[dict[str, Any]], mesh,
             t_start: float) -> dict[str, Any]:
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
  return summary
