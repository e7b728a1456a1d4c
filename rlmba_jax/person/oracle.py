"""The loop's side of a person as the oracle: what is known of the pool's labels, which
items may still be asked, and one round's ask -> answers -> commit (``person.files`` holds
the files and their checks). ``env`` and ``state`` are the round's
``experiment.round_env.RoundEnv`` and ``RoundState``; the loop hands in its ``select_round``
(this module imports nothing of the experiment, which imports it).

The ledger is the record: on every start the labels a person gave and the items skipped are
rebuilt from its lines, so a run stopped at any point (waiting for answers, killed while
ingesting them) continues with exactly what was committed.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np

from rlmba_jax import durable
from rlmba_jax.csv_files import as_id
from rlmba_jax.data import av_clips
from rlmba_jax.data.arrays import UNLABELLED
from rlmba_jax.data.records import RecordSplit
from rlmba_jax.data.registry import dataset_info
from rlmba_jax.errors import ConfigError, DataError, WorkdirError
from rlmba_jax.person import files


logger = logging.getLogger(__name__)


def check_oracle(config, data) -> None:
  """The oracle can answer this data set's pool (before anything is written)."""
  missing = int(np.sum(data.pool.labels == UNLABELLED))
  if config.al.oracle == "dataset":
    if missing:
      raise DataError(f"{missing} of the {len(data.pool)} pool examples have no label, so "
                      "the data set cannot answer for them; set config.al.oracle='person' "
                      "to have a person label what the run picks")
    return
  if jax.process_count() > 1:
    raise ConfigError("config.al.oracle='person' runs in one process; a person answers "
                      "one run's files")
  have = len(data.pool) - missing
  if 0 < have < config.al.initial_size:
    raise ConfigError(f"the pool has {have} labelled examples, fewer than "
                      f"al.initial_size={config.al.initial_size}: the initial set is drawn "
                      "among them. Lower al.initial_size, or leave the pool unlabelled and "
                      "a person labels the initial set too")


class PersonOracle:
  """What a person said so far, and the steps of a round a person answers.

  ``select_given``: ``experiment.rounds.select_round``, to replay the picks of a queries
  file written by an earlier attempt. Round 0 is drawn among the pool's labelled examples and labelled from the data when the
  pool has any labels; otherwise it is queried like every later round.
  """

  def __init__(self, workdir: str, data, person: files.Person | None, close: bool,
               select_given: Callable):
    self.workdir, self.data, self.person, self.close = workdir, data, person, close
    self.select_given = select_given
    self.class_names = tuple(data.class_names)
    self.class_index = {c: i for i, c in enumerate(self.class_names)}
    self.position_of = {str(i): p for p, i in enumerate(data.pool.ids)}  # str(id): any id
    self.data_labelled = np.asarray(data.pool.labels) != UNLABELLED
    self.known = np.full(len(data.pool), UNLABELLED, np.int32)
    self.skipped = np.zeros(len(data.pool), bool)
    self.ledger_labels: dict[int, str] = {}
    self.answers: files.Answers | None = None

  def asks(self, r: int) -> bool:
    """Whether round ``r`` is answered by the person (else by the data: round 0)."""
    return r > 0 or not self.data_labelled.any()

  def replay(self, env, entries: Sequence[Mapping[str, Any]], start: int
             ):
    """Applies the ledger's lines before round ``start`` (after checking the answer files
    against all of them); -> the env with the labels known so far."""
    files.check_answer_files(self.workdir, entries)
    for entry in entries[:start]:
      self._apply(entry)
    return self._put(env)

  def selection_state(self, env, state, r: int):
    """``state`` as selection must see it: skipped items (and, for a round 0 labelled from
    the data, the unlabelled pool) count as taken, so they are never picked."""
    if r == 0 and not self.asks(0):
      exclude = ~self.data_labelled
    else:
      exclude = self.skipped
    if not exclude.any():
      return state
    mask = jax.device_put(exclude, state.labelled.sharding)
    return state._replace(labelled=state.labelled | mask)

  def ask(self, env, chooser, r: int, history, picked,
          phase):
    """Writes round ``r``'s queries (unless written by an earlier attempt, which then
    stand) and collects the answers into ``self.answers``; ``LabelsNeeded`` until they are
    complete or the round is closed."""
    ids = [as_id(i) for i in self.data.pool.ids[picked.positions]]
    path = files.queries_path(self.workdir, r)
    shown = os.path.exists(path)  # a person may have seen these queries
    if shown:
      files.check_queries_unedited(path)
      asked, _ = files.read_queries(path)
      if asked != ids:  # written by a run on other hardware: the file is what was asked
        unknown = [i for i in asked if str(i) not in self.position_of]
        if unknown:
          raise WorkdirError(f"{path} names ids {unknown[:5]} that are not in the pool")
        given = np.asarray([self.position_of[str(i)] for i in asked], np.int32)
        picked = self.select_given(env, chooser, r, [history], None, [given])
        ids = asked
    else:
      files.write_queries(self.workdir, r, ids,
                           self._columns(env, chooser, picked.positions, r),
                           self.class_names)
    phase(r, "asked")
    # close_round ends only a round whose queries were out before this run started (never
    # one it has just written, which nobody has seen).
    self.answers = files.collect(self.workdir, r, ids, self.class_names, self.ledger_labels,
                                  close=self.close and shown, person=self.person)
    return picked

  def label(self, env, chooser, r: int, histories, picked, given, outs, phase, bars):
    """Round ``r``'s ledger line (``experiment.oracle.Oracle``; one seed): the person's
    answers once the queries are out and answered, the picks' ids for a round 0 the data
    labels, or the line already there. -> (env with the labels known, the selection, the
    positions to train on: those answered, the fields of the round's record)."""
    ledger = outs[0].ledger
    if given[0] is not None:
      logger.info("round %d: using the %d ids already in the ledger", r, len(given[0]))
    elif self.asks(r):
      bars.phase(r, "waiting for answers")
      picked = self.ask(env, chooser, r, histories[0], picked, phase)
      asked = files.queries_path(self.workdir, r)
      _, rows = files.read_queries(asked)
      ledger.append(r, self.answers.ids, self.answers.ledger_fields(
          self.data.class_names, files.queries_digest(asked),
          strategy=(rows[0].get("strategy") if rows else None)))
    elif jax.process_index() == 0:
      ledger.append(r, [as_id(i) for i in self.data.pool.ids[picked.positions]])
    entry = ledger.read()[r]
    env, positions = self.commit(env, picked.positions, entry)
    return env, picked, positions, self.round_fields(entry)

  def commit(self, env, positions: np.ndarray, entry: Mapping[str, Any]
             ) -> tuple[Any, np.ndarray]:
    """Applies a round's ledger line; -> (env with the new labels, the positions to train
    on: those answered)."""
    self._apply(entry)
    return self._put(env), np.asarray(positions)[files.answered(entry)]

  def round_fields(self, entry: Mapping[str, Any]) -> dict[str, int]:
    """What ``rounds.jsonl`` records of a person's round."""
    if "labels" not in entry:
      return {}
    done = files.answered(entry)
    return {"queried": len(entry["ids"]), "skipped": len(entry.get("skipped", ())),
            "unanswered": int(len(done) - done.sum() - len(entry.get("skipped", ())))}

  def _apply(self, entry: Mapping[str, Any]) -> None:
    unknown = [i for i in entry["ids"] if str(i) not in self.position_of]
    if unknown:
      raise WorkdirError(f"ledger round {entry['round']} names ids {unknown[:5]} that are not "
                         "in the pool of this data set")
    positions = np.asarray([self.position_of[str(i)] for i in entry["ids"]], np.int64)
    if "labels" not in entry:
      self.known[positions] = np.asarray(self.data.pool.labels)[positions]
      return
    for p, i, label in zip(positions, entry["ids"], entry["labels"]):
      if label is None:
        continue
      if label not in self.class_index:
        raise WorkdirError(f"ledger round {entry['round']} labels id {i} {label!r}, which is "
                           f"not a class of this data set ({', '.join(self.class_names)})")
      self.known[p] = self.class_index[label]
      self.ledger_labels[as_id(i)] = label
    for i in entry.get("skipped", ()):
      self.skipped[self.position_of[str(i)]] = True

  def _stored_rows(self, env, positions: np.ndarray, r: int) -> dict[str, list]:
    """A built-in data set's picks as the page can show them: each modality's stored rows
    in ``queries/round_NNN_items.npz`` (cells ``queries/round_NNN_items.npz:<m>[k]``, drawn
    as images or plots; its ``files.ORIGIN_LOWER_KEY`` names the modalities drawn with row
    0 at the bottom), and the original files where the data set names them
    (``DatasetInfo.source_files``: av_digits' recordings, played by the page)."""
    ids = self.data.pool.ids[positions]
    inputs = getattr(self.data.pool, "inputs", None) or {}
    name = os.path.basename(files.items_path(self.workdir, r))
    stored = {m: np.asarray(inputs[m])[positions] for m in env.names
              if isinstance(inputs.get(m), np.ndarray)}
    if stored:
      lower = [s.name for s in self.data.modalities
               if s.name in stored and s.origin == "lower"]
      durable.write_npz(files.items_path(self.workdir, r),
                        {**stored, files.ORIGIN_LOWER_KEY: np.asarray(lower, dtype=str)})
    columns = {m: ([f"queries/{name}:{m}[{k}]" for k in range(len(ids))] if m in stored
                   else [f"record {as_id(i)}" for i in ids]) for m in env.names}
    info = dataset_info(env.config.data.name)
    manual_dir = env.config.data.manual_dir
    if info.source_files is not None and manual_dir:
      columns.update(info.source_files(manual_dir, ids))
    return columns

  def _record_files(self, positions: np.ndarray, r: int) -> dict[str, list]:
    """A record data set's picks as files under ``queries/round_NNN_items/`` (image, text,
    a clip's first frame, its audio as a wav), shown by the page."""
    folder = os.path.splitext(files.items_path(self.workdir, r))[0]
    columns: dict[str, list] = {}
    for k, p in enumerate(positions):
      media = files.write_record_media(self.data.pool[int(p)], folder, f"{k:03d}",
                                       sample_rate=av_clips.SAMPLE_RATE)
      for column, path in media.items():
        columns.setdefault(column, [""] * len(positions))[k] = os.path.relpath(
            path, self.workdir)
    return columns or {"record": [f"record {as_id(i)}" for i in
                                  self.data.pool.ids[positions]]}

  def _put(self, env):
    pool = dataclasses.replace(self.data.pool, labels=self.known.copy())
    return env._replace(pool_labels=env.trainer.put_labels(pool))

  def _columns(self, env, state, positions: np.ndarray, r: int
               ) -> dict[str, list]:
    """What a queries file shows of each pick: each modality's source, the pick's rank in
    the strategy's order, and the model's guesses (empty before round 0 has trained)."""
    ids = self.data.pool.ids[positions]
    if self.data.describe is not None:
      columns = dict(self.data.describe(ids))
    elif isinstance(self.data.pool, RecordSplit):  # on disk: each item's media as files
      columns = self._record_files(positions, r)
    else:
      columns = self._stored_rows(env, positions, r)
    columns["rank"] = list(range(1, len(ids) + 1))
    # what chose them (round 0: the random initial set); the ledger line records it
    columns["strategy"] = [env.config.al.strategy if state.train is not None
                           else "random"] * len(ids)
    empty = [""] * len(ids)
    guesses = {"predicted": empty, "confidence": empty}
    guesses.update({f"predicted_{m}": empty for m in env.names})
    if state.train is not None:
      train = state.train
      out = jax.device_get(env.trainer.predict(train.params, env.pool_inputs,
                                               state.modality_weights.weights,
                                               train.model_state))
      fused = np.asarray(out["fused_probs"])[positions]
      guesses["predicted"] = [self.class_names[c] for c in fused.argmax(-1)]
      guesses["confidence"] = [float(v) for v in fused.max(-1)]
      for m in env.names:
        probs = np.asarray(out["probs"][m])[positions]
        guesses[f"predicted_{m}"] = [self.class_names[c] for c in probs.argmax(-1)]
    columns.update(guesses)
    return columns
