"""The active-learning loop: select -> label -> retrain -> evaluate, with exact resume.

Workdir layout::

  config.json     the run's config (resuming checks it; keys that may change between
                  invocations, such as al.rounds, hold the latest value)
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

A seed-batched run (``run(config, workdir, seeds=[...])``, ``experiment.seeds``) computes
S seeds in lockstep and writes, for each seed, exactly what a single run of that seed
writes into ``WORKDIR/seed_NNNN/`` (config.json, ledger.jsonl, rounds.jsonl, summary.json,
tensorboard/); ``WORKDIR`` itself holds ``config.json``, ``seeds.json`` (the seeds and how
their programs are shared), one checkpoint of the stacked state per round (``checkpoints/``,
every seed's history in it), ``summary.json`` over the seeds and the lock. The commit order
is the same, each step for every seed: the ledger lines of round r (seed by seed), then
train, evaluate, the checkpoint, the rounds.jsonl lines.
"""

from __future__ import annotations

import collections
import logging
import os
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from rlmba_jax import compilation_cache
from rlmba_jax import parallel
from rlmba_jax.data import load_dataset
from rlmba_jax.data.specs import parse_assignments
from rlmba_jax.csv_files import as_id
from rlmba_jax.experiment import io
from rlmba_jax.experiment import oracle as oracle_lib
from rlmba_jax.experiment import pretrain
from rlmba_jax.experiment import stopping
from rlmba_jax.experiment.checkpoint import RoundCheckpointer
from rlmba_jax.experiment.config import (check_budget, config_differences, resolve_paths,
                                         validate_config)
from rlmba_jax.experiment.errors import ConfigError, DataError, RunError, WorkdirError
from rlmba_jax.experiment.ledger import Ledger
from rlmba_jax.experiment.metrics import RoundLogger
from rlmba_jax.experiment.progress import RunProgress, progress_wanted
from rlmba_jax.experiment.asking import PersonOracle, check_oracle
from rlmba_jax.experiment.oracle import Person
from rlmba_jax.experiment.rounds import (RoundEnv, RoundState, add_stopping, evaluate_round,
                                         initial_state, make_env, round_keys, round_records,
                                         select_round, train_round, update_modality_weights,
                                         update_policy)
from rlmba_jax.experiment.seeds import (SeedBatch, default_vmap_width, parse_seeds,
                                        seed_folder)
from rlmba_jax.experiment.workdir import claim, read_stored_json
from rlmba_jax.models import build_model
from rlmba_jax.models.classifier import encoder_names, is_own_encoder
from rlmba_jax.models.pretrained import (PretrainedWeightsError, convert_state_dict,
                                         load_safetensors)
from rlmba_jax.train import Trainer, make_loss, make_optimizer
from rlmba_jax.train.streaming import StreamingTrainer
from rlmba_jax.train.trainer import schedule_from_config

logger = logging.getLogger(__name__)

PhaseCallback = Callable[[int, str], None]

__all__ = ["RoundState", "WorkdirError", "area_under_curve", "make_trainer",
           "pretrained_hook", "round_keys", "run"]

SEEDS_FILE = "seeds.json"  # a seed-batched workdir's seeds and vmap width


def _check_workdir(workdir: str, config: ml_collections.ConfigDict,
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
  if "seeds" in summary:
    counts = summary["num_labeled"]
    final = (f"mean test top-1 {summary['mean_test_top1'][-1]:.4f}"
             if "mean_test_top1" in summary else "validation only")
    return (f"done: {summary['strategy']} seeds {_seed_text(summary['seeds'])}: {final} "
            f"with {counts[-1] if counts else 0} labels; outputs in "
            f"{os.path.join(workdir, 'seed_NNNN')}")
  final = summary["final"]
  metric = "test" if "test_top1" in final else "val"
  return (f"done: {summary['strategy']} seed {summary['seed']}: {metric} top-1 "
          f"{final.get(f'{metric}_top1', float('nan')):.4f} with "
          f"{final.get('num_labeled', 0)} labels; outputs in {workdir}")


def run(config: ml_collections.ConfigDict, workdir: str, *,
        phase_callback: PhaseCallback | None = None, person: Person | None = None,
        close_round: bool = False, seeds=None, vmap_width: int | None = None
        ) -> dict[str, Any]:
  """Runs (or continues) the active-learning experiment described by ``config``.

  With ``seeds`` (a list, or ``"0-49"``) it runs those seeds of ``config`` in lockstep,
  each round step one program over the seed axis (``experiment.seeds``), and writes each
  seed's outputs in ``workdir/seed_NNNN/`` (``config.seed`` is not read);
  ``vmap_width``: seeds vectorised together (1: one after another inside each program,
  bit-identical to single runs; 0: all), by default 1 on a CPU and 0 elsewhere, and the
  stored one when a run is continued.

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
  config = resolve_paths(config)
  if seeds is not None:
    return _run_seeds(config, workdir, seeds, vmap_width, phase_callback, t_start)
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
    _check_own_encoders(config, data)
    if writer and not os.path.exists(os.path.join(workdir, "config.json")):
      _record_fingerprint(workdir, data)
    _check_fingerprint(workdir, data)
    if writer:  # after every check: a refused command changes nothing
      _record_config(os.path.join(workdir, "config.json"), config)
    asker = (PersonOracle(workdir, data, person, close_round)
             if config.al.oracle == "person" else None)
    return _run_rounds(config, workdir, data, mesh, phase_callback or (lambda r, p: None),
                       t_start, asker)


def _run_seeds(config, workdir: str, seeds, vmap_width: int | None, phase_callback,
               t_start: float) -> dict[str, Any]:
  """``run`` of several seeds in lockstep (see ``run``): checks, then ``_run_rounds``."""
  try:
    seeds = parse_seeds(seeds)
  except ValueError as e:
    raise ConfigError(f"seeds: {e}") from None
  if config.al.oracle == "person":
    raise ConfigError("config.al.oracle='person' runs one seed: a person answers one run's "
                      "queries; run it without seeds")
  if config.al.stop_when:
    raise ConfigError(f"config.al.stop_when={config.al.stop_when!r} ends a run early; "
                      "seed-batched runs go in lockstep to al.rounds. Leave it '' (each "
                      "seed's rounds.jsonl still records the stopping signals per round)")
  if vmap_width is not None and vmap_width < 0:
    raise ConfigError(f"vmap_width={vmap_width} must be 0 (all seeds) or positive")
  try:
    mesh = parallel.make_seed_mesh(config.num_devices, len(seeds))
  except ValueError as e:
    raise ConfigError(f"config.num_devices={config.num_devices}: {e}") from None
  workdir = os.path.abspath(workdir)
  writer = jax.process_index() == 0
  with claim(workdir, lock=writer):
    _check_workdir(workdir, config, batched=True)
    vmap_width = _check_seeds_file(workdir, seeds, vmap_width)
    data = _load_data(config)
    if data.streamed:
      raise ConfigError(f"data set {config.data.name!r} is streamed from disk, one run at a "
                        "time; run it without seeds (seed-batched runs hold in-memory data)")
    check_budget(config, len(data.pool))
    _check_eval_splits(config, data)
    check_oracle(config, data)
    _check_own_encoders(config, data)
    if writer and not os.path.exists(os.path.join(workdir, "config.json")):
      _record_fingerprint(workdir, data)
      io.write_json(os.path.join(workdir, SEEDS_FILE),
                    {"seeds": list(seeds), "vmap_width": vmap_width})
    _check_fingerprint(workdir, data)
    if writer:  # after every check: a refused command changes nothing
      _record_config(os.path.join(workdir, "config.json"), config)
    batch = SeedBatch(seeds, mesh=mesh, vmap_width=vmap_width)
    return _run_rounds(config, workdir, data, mesh, phase_callback or (lambda r, p: None),
                       t_start, seeds=batch)


def _check_seeds_file(workdir: str, seeds: tuple[int, ...], vmap_width: int | None) -> int:
  """The vmap width to run with: the stored one of a run being continued (which must have
  the same seeds), else ``vmap_width`` or the backend's default."""
  path = os.path.join(workdir, SEEDS_FILE)
  if not os.path.exists(path):
    return default_vmap_width() if vmap_width is None else int(vmap_width)
  stored = read_stored_json(path)
  if list(stored.get("seeds", [])) != list(seeds):
    raise WorkdirError(f"{workdir} holds seeds {_seed_text(stored.get('seeds', []))}, not "
                       f"{_seed_text(seeds)}; give the same seeds to continue it, or choose "
                       "another --workdir. Nothing was changed.")
  width = int(stored.get("vmap_width", 1))
  if vmap_width is not None and int(vmap_width) != width:
    raise WorkdirError(f"{workdir} was run with vmap_width={width} (seeds vectorised "
                       f"together), not {vmap_width}; continue it with {width} so its "
                       "numbers stay the same, or choose another --workdir.")
  return width


FINGERPRINT_FILE = "data_fingerprint.json"  # own data's files, as the run first read them


def _record_config(path: str, config: ml_collections.ConfigDict) -> None:
  """Writes the config the run goes on with, once the workdir's check has passed: the same
  file on a plain resume; the new value of a key that may change between invocations
  (al.rounds grown, a person's next strategy), so ``load_model`` and readers see it."""
  text = config.to_json(indent=2) + "\n"
  if os.path.exists(path):
    with open(path, encoding="utf-8") as f:
      if f.read() == text:
        return
  io.write_atomic(path, text)


def _record_fingerprint(workdir: str, data) -> None:
  if data.fingerprint is not None:
    io.write_json(os.path.join(workdir, FINGERPRINT_FILE), dict(data.fingerprint))


def _check_fingerprint(workdir: str, data) -> None:
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


def _seed_text(seeds) -> str:
  seeds = list(seeds)
  if seeds and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
    return f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else str(seeds[0])
  return ",".join(str(s) for s in seeds)


class SeedOutputs:
  """The files of one seed's run: its ledger, rounds.jsonl, TensorBoard folder, summary
  (in the workdir itself for a single run, in ``seed_NNNN/`` for a batched one)."""

  def __init__(self, folder: str, config: ml_collections.ConfigDict, enabled: bool):
    self.folder, self.config = folder, config
    self.ledger = Ledger(os.path.join(folder, "ledger.jsonl"))
    self.rounds_path = os.path.join(folder, "rounds.jsonl")
    self.board = RoundLogger(folder, enabled=enabled and config.eval.tensorboard,
                             config_text="```\n" + config.to_json(indent=2) + "\n```")


def _seed_outputs(config, workdir: str, seeds: SeedBatch) -> list[SeedOutputs]:
  writer = jax.process_index() == 0
  if not seeds.batched:
    return [SeedOutputs(workdir, config, writer)]
  outs = []
  for seed in seeds.seeds:
    folder = os.path.join(workdir, seed_folder(seed))
    own = config.copy_and_resolve_references()
    own.seed = seed
    if writer:
      os.makedirs(folder, exist_ok=True)
      _record_config(os.path.join(folder, "config.json"), own)
    outs.append(SeedOutputs(folder, own, writer))
  return outs


def _run_rounds(config, workdir: str, data, mesh, phase: PhaseCallback, t_start: float,
                asker: PersonOracle | None = None, seeds: SeedBatch | None = None
                ) -> dict[str, Any]:
  """Resumes from the latest checkpoint, replays the ledger's later lines, runs the rest."""
  writer = jax.process_index() == 0
  seeds = seeds or SeedBatch((config.seed,), mesh=mesh, batched=False)
  bars = RunProgress(writer and progress_wanted(config.eval.progress),
                     strategy=config.al.strategy, num_epochs=config.train.num_epochs,
                     seeds=seeds.size if seeds.batched else 1)
  env = _make_run_env(config, data, mesh, bars.epoch_callback if bars.enabled else None,
                      seeds)
  outs = _seed_outputs(config, workdir, seeds)
  folder = os.path.join(workdir, "checkpoints")
  if os.path.exists(folder) and not os.path.isdir(folder):
    raise WorkdirError(f"{folder} is a file, not the run's checkpoints folder; move it away "
                       "and run again (the run then replays its ledger). Nothing was changed.")
  checkpointer = RoundCheckpointer(folder, config.checkpoint.max_to_keep)
  state, histories, start = _resume(env, mesh, checkpointer)
  env, pending = _replay_ledgers(env, outs, asker, start, data, state)
  for out, history in zip(outs, histories):
    if writer:
      io.write_jsonl(out.rounds_path, history)  # the checkpoint's history is the truth
    out.board.start(history)
  last = _last_round_done(config, workdir, histories, start)
  bars.begin(config.al.rounds, start)
  pool_outputs = None  # the last evaluation's pool outputs (evidential heads), reused once
  try:
    for r in range(last + 1, config.al.rounds + 1):
      given = [p[r - start] if r - start < len(p) else None for p in pending]
      env, state, records, pool_outputs = _one_round(env, data, state, r, histories,
                                                     pool_outputs, given, outs, asker,
                                                     phase, bars)
      _commit_round(config, seeds, r, state, records, histories, outs, checkpointer, phase,
                    bars)
      if stopping.should_stop(records[0], config.al.stop_when):
        logger.info("round %d: stopping (al.stop_when=%r): %s", r, config.al.stop_when,
                    stopping.stop_reason(records[0]))
        break
  finally:
    for out in outs:
      out.board.close()
    bars.close()
  checkpointer.close()
  summaries = [_summary(out.config, history, mesh, t_start)
               for out, history in zip(outs, histories)]
  if not seeds.batched:
    if writer:
      io.write_json(os.path.join(workdir, "summary.json"), summaries[0])
    return summaries[0]
  summary = _seeds_summary(config, seeds, summaries, mesh, t_start)
  if writer:
    for out, seed_summary in zip(outs, summaries):
      io.write_json(os.path.join(out.folder, "summary.json"), seed_summary)
    io.write_json(os.path.join(workdir, "summary.json"), summary)
  return summary


def _last_round_done(config, workdir: str, histories, start: int) -> int:
  """The last round this invocation need not run: ``start - 1``, or ``al.rounds`` when the
  run is complete or stopped on its signal (``al.stop_when``)."""
  if start > config.al.rounds:
    logger.info("%s is complete (%d rounds); raise al.rounds to continue.", workdir,
                start - 1)
  if histories[0] and stopping.should_stop(histories[0][-1], config.al.stop_when):
    logger.info("%s stopped at round %d (al.stop_when=%r: %s); set al.stop_when='' to "
                "continue.", workdir, start - 1, config.al.stop_when,
                stopping.stop_reason(histories[0][-1]))
    return config.al.rounds  # nothing to run
  return start - 1


def _commit_round(config, seeds: SeedBatch, r: int, state: RoundState, records, histories,
                  outs, checkpointer: RoundCheckpointer, phase: PhaseCallback, bars) -> None:
  """Round ``r``'s durable steps in their order: the checkpoint (with every seed's history),
  then rounds.jsonl, then TensorBoard and the progress line."""
  for history, record in zip(histories, records):
    history.append(record)
  checkpointer.save(r, state.checkpoint(), _checkpoint_meta(seeds, histories))
  phase(r, "checkpointed")
  if jax.process_index() == 0:
    for out, record in zip(outs, records):
      io.append_jsonl(out.rounds_path, record)
  phase(r, "reported")
  for out, record in zip(outs, records):
    out.board.write(record)
  bars.round_done(records)
  _log_round(config, records, bars)


def _checkpoint_meta(seeds: SeedBatch, histories: list[list[dict[str, Any]]]) -> dict:
  """The JSON part of a round's checkpoint: the history (every seed's, by seed)."""
  if not seeds.batched:
    return {"history": histories[0]}
  return {"seeds": list(seeds.seeds),
          "histories": {str(s): h for s, h in zip(seeds.seeds, histories)}}


def _replay_ledgers(env: RoundEnv, outs: list[SeedOutputs], asker: PersonOracle | None,
                    start: int, data, state: RoundState
                    ) -> tuple[RoundEnv, list[list[np.ndarray]]]:
  """Each seed's ledger against the checkpoint (``_replay_ledger``) -> (env, per seed the
  positions of its lines after the checkpoint)."""
  labelled = env.seeds.split(state.labelled)
  pending = []
  for out, seed_labelled in zip(outs, labelled):
    env, seed_pending = _replay_ledger(env, out.ledger, asker, start, data, seed_labelled)
    pending.append(seed_pending)
  return env, pending


def _replay_ledger(env: RoundEnv, ledger: Ledger, asker: PersonOracle | None, start: int,
                   data, labelled) -> tuple[RoundEnv, list[np.ndarray]]:
  """Process 0 checks the ledger against the checkpoint's labelled set (and a person's
  answers against the ledger); every process gets the positions of its lines after the
  checkpoint (selected, not yet trained), which are replayed rather than selected again."""
  pending, refused = None, None
  if jax.process_index() == 0:
    try:
      entries = ledger.read()
      if asker is not None:
        env = asker.replay(env, entries, start)
      pending = _pending_positions(ledger, start, data.pool.ids, labelled, entries,
                                   env.config.al.rounds)
    except WorkdirError as e:
      refused = e
  pending = _share_from_process_zero(pending, refused is not None)
  if refused is not None:
    raise refused
  return env, pending


def _one_round(env: RoundEnv, data, state: RoundState, r: int, histories, pool_outputs,
               given, outs: list[SeedOutputs], asker: PersonOracle | None,
               phase: PhaseCallback, bars: RunProgress):
  """Round ``r`` of every seed up to its checkpoint: select (or replay ``given``, one entry
  per seed), commit the ledger lines (a person's answers first, with ``asker``), train,
  evaluate, update the AMCB weights and the policy. -> (env, the new state, the round's
  record of each seed, its pool outputs)."""
  config, seeds = env.config, env.seeds
  bars.phase(r, "select")
  chooser = state if asker is None else asker.selection_state(env, state, r)
  picked = select_round(env, chooser, r, histories, pool_outputs, given)
  positions = picked.positions
  entry = None
  if asker is not None:  # one seed
    ledger = outs[0].ledger
    if given[0] is not None:
      logger.info("round %d: using the %d ids already in the ledger", r, len(given[0]))
    elif asker.asks(r):
      bars.phase(r, "waiting for answers")
      picked = asker.ask(env, chooser, r, histories[0], picked, phase)
      asked = oracle_lib.queries_path(workdir_of(ledger), r)
      _, rows = oracle_lib.read_queries(asked)
      ledger.append(r, asker.answers.ids, asker.answers.ledger_fields(
          data.class_names, oracle_lib.queries_digest(asked),
          strategy=(rows[0].get("strategy") if rows else None)))
    elif jax.process_index() == 0:
      ledger.append(r, [as_id(i) for i in data.pool.ids[picked.positions]])
    entry = ledger.read()[r]
    env, positions = asker.commit(env, picked.positions, entry)
  else:
    seed_positions = picked.positions if seeds.batched else [picked.positions]
    for out, g, p in zip(outs, given, seed_positions):
      if g is not None:
        if not seeds.batched:
          logger.info("round %d: using the %d ids already in the ledger", r, len(g))
      elif jax.process_index() == 0:
        out.ledger.append(r, [as_id(i) for i in data.pool.ids[p]])
  phase(r, "labelled")
  bars.phase(r, "train")
  trained, train_log, train_seconds = train_round(env, state, r, positions)
  phase(r, "trained")
  bars.phase(r, "evaluate")
  evaluation = evaluate_round(env, trained, r)
  weights = update_modality_weights(env, trained.modality_weights, evaluation)
  records = round_records(env, r, trained, weights, evaluation, train_log, picked,
                          train_seconds)
  add_stopping(env, records, histories, evaluation)
  if entry is not None:
    records[0].update(asker.round_fields(entry))
  policy = state.policy
  if picked.transition is not None:
    policy, logs = update_policy(env, policy, picked.transition, records, histories)
    for record, log in zip(records, logs):
      record["policy"] = log
  state = trained._replace(modality_weights=weights, policy=policy)
  return env, state, records, evaluation.pool_outputs


def workdir_of(ledger: Ledger) -> str:
  """The workdir a (single run's) ledger lives in."""
  return os.path.dirname(ledger.path)


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


def _check_own_encoders(config: ml_collections.ConfigDict, data) -> None:
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


def _make_run_env(config: ml_collections.ConfigDict, data, mesh, epoch_callback=None,
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


def _resume(env: RoundEnv, mesh, checkpointer: RoundCheckpointer
            ) -> tuple[RoundState, list[list[dict[str, Any]]], int]:
  """(state, each seed's history, first round to run) from the latest checkpoint, or a
  fresh start."""
  config, seeds = env.config, env.seeds
  target = initial_state(env, mesh)
  latest = checkpointer.latest_round()
  if latest is None:
    state = target._replace(train=None)
    if env.agent is not None and config.al.rlmba.init_from:
      state = state._replace(policy=_initial_policy(env, target, mesh))
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


def _initial_policy(env: RoundEnv, target: RoundState, mesh):
  """The policy ``al.rlmba.init_from`` names (a pretraining, or an earlier single RL-MBA
  run's latest policy), for every seed."""
  config, seeds = env.config, env.seeds
  source = config.al.rlmba.init_from
  if pretrain.is_pretraining(source):
    params = pretrain.load_pretrained_params(
        source, config.al.rlmba.hidden, config.al.rlmba.policy_inputs,
        seeds.take(target.policy.params, 0))
    policy = env.agent.start_from(params)
    return policy if seeds.batched else parallel.put_replicated(policy, mesh)
  if not seeds.batched:
    return _load_policy(source, target.checkpoint())
  one = jax.tree.map(lambda x: x[0], target.checkpoint())
  return seeds.tile(_load_policy(source, one))


def _pending_positions(ledger: Ledger, start: int, pool_ids: np.ndarray, labelled,
                       entries: list[dict[str, Any]], rounds: int) -> list[np.ndarray]:
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
  if len(entries) > rounds + 1:
    raise WorkdirError(
        f"{ledger.path} records {len(entries)} rounds (0-{len(entries) - 1}) but "
        f"al.rounds={rounds} runs rounds 0-{rounds}: raise al.rounds to {len(entries) - 1} to "
        f"continue it, or restore the ledger{moved}.")
  position_of = {str(i): p for p, i in enumerate(pool_ids)}  # str(id): any id
  positions = []
  for r, entry in enumerate(entries):
    unknown = [i for i in entry["ids"] if str(i) not in position_of]
    if unknown:
      raise WorkdirError(f"ledger round {r} names ids {unknown[:5]} that are not in the "
                         f"pool of this data split{moved}")
    positions.append(np.asarray([position_of[str(i)] for i in entry["ids"]], np.int32))
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


def _log_round(config: ml_collections.ConfigDict, records: list[dict[str, Any]],
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


def _seeds_summary(config: ml_collections.ConfigDict, seeds: SeedBatch,
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


def _summary(config: ml_collections.ConfigDict, history: list[dict[str, Any]], mesh,
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
