"""The active-learning loop: select -> label -> retrain -> evaluate, with exact resume.

Workdir layout::

  config.json     the run's config (resuming checks it; keys that may change between
                  invocations, such as al.rounds, hold the latest value)
  ledger.jsonl    one line per round: the example ids labelled in that round (round 0 =
                  the initial set) and a digest chained to the line before; append-only,
                  fsync'ed, the record of what was labelled (and, with a person as the
                  oracle, of what the person answered)
  queries/, labels/  with ``al.oracle="person"``: each round's queries and answers
                  (``person.files``)
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
TensorBoard event files); ``WORKDIR`` itself holds ``config.json``, ``seeds.json`` (the
seeds and how their programs are shared), one checkpoint of the stacked state per round
(``checkpoints/``, every seed's history in it), ``summary.json`` over the seeds and the
lock. The commit order is the same, each step for every seed: the ledger lines of round r
(seed by seed), then train, evaluate, the checkpoint, the rounds.jsonl lines.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable

import jax
import ml_collections
import numpy as np

from rlmba_jax import compilation_cache, durable, parallel
from rlmba_jax.errors import ConfigError, WorkdirError
from rlmba_jax.experiment import stopping
from rlmba_jax.experiment.checkpoint import RoundCheckpointer
from rlmba_jax.experiment.config import resolve_paths, validate_config
from rlmba_jax.experiment.event_files import RoundLogger
from rlmba_jax.experiment.hooks import round_hooks
from rlmba_jax.experiment.ledger import Ledger, pending_positions, share_from_process_zero
from rlmba_jax.experiment.oracle import DatasetOracle, Oracle
from rlmba_jax.experiment.progress import RunProgress, progress_wanted
from rlmba_jax.experiment.round_env import RoundEnv, RoundState
from rlmba_jax.experiment.rounds import (add_stopping, evaluate_round, round_records, select_round,
                                         train_round, update_modality_weights, update_policy)
from rlmba_jax.experiment.seeds import SeedBatch, default_vmap_width, parse_seeds, seed_folder
from rlmba_jax.experiment.start import (SEEDS_FILE, check_and_record, check_workdir, load_data,
                                        make_run_env, record_config, resume)
from rlmba_jax.experiment.summary import run_summary, seed_text, seeds_summary
from rlmba_jax.experiment.workdir import claim, read_stored_json
from rlmba_jax.person.files import Person
from rlmba_jax.person.oracle import PersonOracle


logger = logging.getLogger(__name__)

PhaseCallback = Callable[[int, str], None]

__all__ = ["run"]


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
      to answer a round before the run would stop for one (``person.SimulatedPerson``).
    close_round: with ``al.oracle="person"``, end the waiting round with the answers given
      so far (the unanswered items go back to the pool).

  Returns:
    The summary written to ``summary.json``.

  Raises:
    The errors of ``rlmba_jax.errors`` (each with its exit code), never after damaging
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
    check_workdir(workdir, config)
    data = load_data(config)
    check_and_record(config, workdir, data, writer)
    oracle = (PersonOracle(workdir, data, person, close_round, select_round)
              if config.al.oracle == "person" else None)  # None: the data set's
    return _run_rounds(config, workdir, data, mesh, phase_callback or (lambda r, p: None),
                       t_start, oracle)


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
    check_workdir(workdir, config, batched=True)
    vmap_width = _check_seeds_file(workdir, seeds, vmap_width)
    data = load_data(config)
    if data.streamed:
      raise ConfigError(f"data set {config.data.name!r} is streamed from disk, one run at a "
                        "time; run it without seeds (seed-batched runs hold in-memory data)")
    check_and_record(config, workdir, data, writer, first_files={
        SEEDS_FILE: {"seeds": list(seeds), "vmap_width": vmap_width}})
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
    raise WorkdirError(f"{workdir} holds seeds {seed_text(stored.get('seeds', []))}, not "
                       f"{seed_text(seeds)}; give the same seeds to continue it, or choose "
                       "another --workdir. Nothing was changed.")
  width = int(stored.get("vmap_width", 1))
  if vmap_width is not None and int(vmap_width) != width:
    raise WorkdirError(f"{workdir} was run with vmap_width={width} (seeds vectorised "
                       f"together), not {vmap_width}; continue it with {width} so its "
                       "numbers stay the same, or choose another --workdir.")
  return width


class SeedOutputs:
  """The files of one seed's run: its ledger, rounds.jsonl, TensorBoard folder, summary
  (in the workdir itself for a single run, in ``seed_NNNN/`` for a batched one)."""

  def __init__(self, folder: str, config: ml_collections.ConfigDict, enabled: bool):
    self.folder, self.config = folder, config
    self.ledger = Ledger(os.path.join(folder, "ledger.jsonl"))
    self.rounds_path = os.path.join(folder, "rounds.jsonl")
    self.board = RoundLogger(folder, enabled=enabled and config.eval.tensorboard,
                             config_text="```\n" + config.to_json(indent=2) + "\n```")


def seed_outputs(config, workdir: str, seeds: SeedBatch) -> list[SeedOutputs]:
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
      record_config(os.path.join(folder, "config.json"), own)
    outs.append(SeedOutputs(folder, own, writer))
  return outs


def _run_rounds(config, workdir: str, data, mesh, phase: PhaseCallback, t_start: float,
                oracle: Oracle | None = None, seeds: SeedBatch | None = None
                ) -> dict[str, Any]:
  """Resumes from the latest checkpoint, replays the ledger's later lines, runs the rest
  (``oracle``: who labels, the data set by default)."""
  writer = jax.process_index() == 0
  oracle = oracle or DatasetOracle(data.pool.ids)
  seeds = seeds or SeedBatch((config.seed,), mesh=mesh, batched=False)
  bars = RunProgress(writer and progress_wanted(config.eval.progress),
                     strategy=config.al.strategy, num_epochs=config.train.num_epochs,
                     seeds=seeds.size if seeds.batched else 1)
  env = make_run_env(config, data, mesh, bars.epoch_callback if bars.enabled else None,
                      seeds)
  outs = seed_outputs(config, workdir, seeds)
  folder = os.path.join(workdir, "checkpoints")
  if os.path.exists(folder) and not os.path.isdir(folder):
    raise WorkdirError(f"{folder} is a file, not the run's checkpoints folder; move it away "
                       "and run again (the run then replays its ledger). Nothing was changed.")
  checkpointer = RoundCheckpointer(folder, config.checkpoint.max_to_keep)
  state, histories, start = resume(env, mesh, checkpointer)
  env, pending = _replay_ledgers(env, outs, oracle, start, data, state)
  last = _last_round_done(config, workdir, histories, start)
  hooks = round_hooks(config, outs, writer, phase, bars)
  for hook in hooks:
    hook.start(histories)
  pool_outputs = None  # the last evaluation's pool outputs (in memory or evidential), reused once
  try:
    for r in range(last + 1, config.al.rounds + 1):
      given = [p[r - start] if r - start < len(p) else None for p in pending]
      env, state, records, pool_outputs = _one_round(env, state, r, histories,
                                                     pool_outputs, given, outs, oracle,
                                                     phase, bars)
      _commit_round(seeds, r, state, records, histories, checkpointer, phase, hooks)
      if stopping.should_stop(records[0], config.al.stop_when):
        logger.info("round %d: stopping (al.stop_when=%r): %s", r, config.al.stop_when,
                    stopping.stop_reason(records[0]))
        break
  finally:
    for hook in hooks:
      hook.close()
  checkpointer.close()
  summaries = [run_summary(out.config, history, mesh, t_start)
               for out, history in zip(outs, histories)]
  if not seeds.batched:
    if writer:
      durable.write_json(os.path.join(workdir, "summary.json"), summaries[0])
    return summaries[0]
  summary = seeds_summary(config, seeds, summaries, mesh, t_start)
  if writer:
    for out, seed_summary in zip(outs, summaries):
      durable.write_json(os.path.join(out.folder, "summary.json"), seed_summary)
    durable.write_json(os.path.join(workdir, "summary.json"), summary)
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


def _commit_round(seeds: SeedBatch, r: int, state: RoundState, records, histories,
                  checkpointer: RoundCheckpointer, phase: PhaseCallback, hooks) -> None:
  """Round ``r``'s durable steps in their order: the checkpoint (with every seed's history),
  then the hooks (``experiment.hooks``: rounds.jsonl, TensorBoard, the progress line)."""
  for history, record in zip(histories, records):
    history.append(record)
  checkpointer.save(r, state.checkpoint(), _checkpoint_meta(seeds, histories))
  phase(r, "checkpointed")
  for hook in hooks:
    hook.round_done(r, records)


def _checkpoint_meta(seeds: SeedBatch, histories: list[list[dict[str, Any]]]) -> dict:
  """The JSON part of a round's checkpoint: the history (every seed's, by seed)."""
  if not seeds.batched:
    return {"history": histories[0]}
  return {"seeds": list(seeds.seeds),
          "histories": {str(s): h for s, h in zip(seeds.seeds, histories)}}


def _replay_ledgers(env: RoundEnv, outs: list[SeedOutputs], oracle: Oracle,
                    start: int, data, state: RoundState
                    ) -> tuple[RoundEnv, list[list[np.ndarray]]]:
  """Each seed's ledger against the checkpoint (``_replay_ledger``) -> (env, per seed the
  positions of its lines after the checkpoint)."""
  labelled = env.seeds.split(state.labelled)
  pending = []
  for out, seed_labelled in zip(outs, labelled):
    env, seed_pending = _replay_ledger(env, out.ledger, oracle, start, data, seed_labelled)
    pending.append(seed_pending)
  return env, pending


def _replay_ledger(env: RoundEnv, ledger: Ledger, oracle: Oracle, start: int,
                   data, labelled) -> tuple[RoundEnv, list[np.ndarray]]:
  """Process 0 checks the ledger against the checkpoint's labelled set (and a person's
  answers against the ledger); every process gets the positions of its lines after the
  checkpoint (selected, not yet trained), which are replayed rather than selected again."""
  pending, refused = None, None
  if jax.process_index() == 0:
    try:
      entries = ledger.read()
      env = oracle.replay(env, entries, start)
      pending = pending_positions(ledger, start, data.pool.ids, labelled, entries,
                                   env.config.al.rounds)
    except WorkdirError as e:
      refused = e
  pending = share_from_process_zero(pending, refused is not None)
  if refused is not None:
    raise refused
  return env, pending


def _one_round(env: RoundEnv, state: RoundState, r: int, histories, pool_outputs,
               given, outs: list[SeedOutputs], oracle: Oracle,
               phase: PhaseCallback, bars: RunProgress):
  """Round ``r`` of every seed up to its checkpoint: select (or replay ``given``, one entry
  per seed), the oracle commits the ledger lines (a person's answers first), train,
  evaluate, update the AMCB weights and the policy. -> (env, the new state, the round's
  record of each seed, its pool outputs)."""
  bars.phase(r, "select")
  chooser = oracle.selection_state(env, state, r)
  picked = select_round(env, chooser, r, histories, pool_outputs, given)
  env, picked, positions, fields = oracle.label(env, chooser, r, histories, picked, given,
                                                outs, phase, bars)
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
  records[0].update(fields)  # a person's round: queried, skipped, unanswered
  policy = state.policy
  if picked.transition is not None:
    policy, logs = update_policy(env, policy, picked.transition, records, histories)
    for record, log in zip(records, logs):
      record["policy"] = log
  state = trained._replace(modality_weights=weights, policy=policy)
  return env, state, records, evaluation.pool_outputs


