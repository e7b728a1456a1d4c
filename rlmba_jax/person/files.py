"""A person as the oracle: the round's queries go out as a file, the answers come back as one.

With ``config.al.oracle="person"`` a round that has selected writes::

  WORKDIR/queries/round_NNN.csv   id, what to show per modality, the model's guess ...
  WORKDIR/queries/classes.txt     the class names a label may take, one per line

and the run stops (exit code 3, ``LabelsNeeded``) until ``WORKDIR/labels/round_NNN.csv``
answers it (header ``id,label[,annotator]``; a label is a class name, or ``skip`` for an item
the person cannot label). Running the same command again reads the answers, checks them all
(nothing is written if any line is wrong: ``LabelsError`` names the file and line), commits
them to the ledger with the ids, and goes on. The round waits until every query is answered,
unless it is closed with what is there (``run(..., close_round=True)``, ``--close_round``,
or the labelling page's "End round", which writes ``labels/round_NNN.closed``): then the
unanswered items go back to the pool. Skipped items are never queried again.

A ``SimulatedPerson`` answers from ground truth (with optional noise and skips) through the
same files, for tests and notebooks: ``run(config, workdir, person=SimulatedPerson(...))``.
"""

from __future__ import annotations

import csv
import io
import os
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import numpy as np

from rlmba_jax import csv_files, durable
from rlmba_jax.config_choices import ORACLES
from rlmba_jax.csv_files import as_id, parse_id
from rlmba_jax.errors import LabelsError, LabelsNeeded, WorkdirError


SKIP = "skip"
LABELS_HEADER = ("id", "label")  # then optionally "annotator"

# ``(queries_file, labels_file, round) -> None``: writes (or extends) the answers file.
Person = Callable[[str, str, int], None]


def queries_path(workdir: str, r: int) -> str:
  return os.path.join(workdir, "queries", f"round_{r:03d}.csv")


def items_path(workdir: str, r: int) -> str:
  """The stored rows of round ``r``'s queries (built-in data sets; the page draws them)."""
  return os.path.join(workdir, "queries", f"round_{r:03d}_items.npz")


# The key of an items file naming the modalities whose row 0 the page draws at the bottom
# (``ModalitySpec.origin == "lower"``: spectrograms). Items files hold built-in data sets'
# rows only, and none of them has a modality of this name.
ORIGIN_LOWER_KEY = "_origin_lower"


def write_record_media(record: Mapping[str, Any], folder: str, stem: str,
                       sample_rate: int) -> dict[str, str]:
  """A record data set's item as files a browser shows (the labelling page): ``image``
  bytes as ``.jpg``, ``text`` as ``.txt``, a clip's first of ``frames`` as ``.jpg``, int16
  ``audio`` (at ``sample_rate``) as a ``.wav``. -> column -> file path (under ``folder``,
  named ``stem_<col>``)."""
  import wave  # pylint: disable=g-import-not-at-top
  os.makedirs(folder, exist_ok=True)
  out = {}

  def put(column: str, ext: str, data: bytes) -> None:
    path = os.path.join(folder, f"{stem}_{column}{ext}")
    with open(path, "wb") as f:
      f.write(data)
    out[column] = path

  if isinstance(record.get("image"), (bytes, np.bytes_)) and record["image"]:
    put("image", ".jpg", bytes(record["image"]))
  if record.get("text") is not None and not isinstance(record["text"], np.ndarray):
    text = record["text"]
    put("text", ".txt", text if isinstance(text, bytes) else str(text).encode())
  frames = record.get("frames")
  if frames is not None and len(frames) and isinstance(frames[0], (bytes, np.bytes_)):
    put("frame", ".jpg", bytes(frames[0]))
  audio = record.get("audio")
  if isinstance(audio, np.ndarray) and audio.dtype == np.int16 and audio.ndim == 1:
    path = os.path.join(folder, f"{stem}_audio.wav")
    with wave.open(path, "wb") as w:
      w.setnchannels(1)
      w.setsampwidth(2)
      w.setframerate(sample_rate)
      w.writeframes(audio.tobytes())
    out["audio"] = path
  return out


def labels_path(workdir: str, r: int) -> str:
  return os.path.join(workdir, "labels", f"round_{r:03d}.csv")


def closed_path(workdir: str, r: int) -> str:
  return os.path.join(workdir, "labels", f"round_{r:03d}.closed")


def classes_path(workdir: str) -> str:
  return os.path.join(workdir, "queries", "classes.txt")


def read_class_names(workdir: str) -> tuple[str, ...]:
  with open(classes_path(workdir), encoding="utf-8") as f:
    return tuple(l.rstrip("\n") for l in f if l.strip())


class Answers(NamedTuple):
  """One round's answers, in query order: ``labels[i]`` is a class index, or None for an
  item skipped or (a closed round) left unanswered; ``skipped`` the skipped ids;
  ``annotators`` id -> who answered (when the file says)."""
  ids: list[int]
  labels: list[int | None]
  skipped: list[int]
  annotators: dict[int, str]

  def ledger_fields(self, class_names: Sequence[str], queries: str | None = None,
                    strategy: str | None = None) -> dict[str, Any]:
    """The fields a ledger line stores besides round and ids (``queries``: the sha256 of
    the queries file the answers were given to; ``strategy``: what chose them)."""
    fields: dict[str, Any] = {
        "labels": [None if l is None else class_names[l] for l in self.labels],
        "skipped": list(self.skipped)}
    if self.annotators:
      fields["annotators"] = {str(k): v for k, v in sorted(self.annotators.items())}
    if queries:
      fields["queries"] = queries
    if strategy:
      fields["strategy"] = strategy
    return fields


def write_queries(workdir: str, r: int, ids: Sequence[int], columns: Mapping[str, Sequence],
                  class_names: Sequence[str]) -> str:
  """Writes round ``r``'s queries (atomically) and the class list; returns the path.

  ``columns``: column -> one value per id, in the order they appear after ``id``.
  """
  buffer = io.StringIO()
  w = csv.writer(buffer, lineterminator="\n")
  w.writerow(["id", *columns])
  for i, example_id in enumerate(ids):
    w.writerow([as_id(example_id), *(_cell(v[i]) for v in columns.values())])
  path = queries_path(workdir, r)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  os.makedirs(os.path.dirname(labels_path(workdir, r)), exist_ok=True)
  durable.write_atomic(classes_path(workdir), "".join(f"{c}\n" for c in class_names))
  durable.write_atomic(path + ".sha256", _sha256(buffer.getvalue().encode()) + "\n")
  durable.write_atomic(path, buffer.getvalue())
  return path


def _sha256(data: bytes) -> str:
  import hashlib  # pylint: disable=g-import-not-at-top
  return hashlib.sha256(data).hexdigest()


def queries_digest(path: str) -> str:
  """sha256 of a queries file's bytes (what the ledger line of its round records)."""
  with open(path, "rb") as f:
    return _sha256(f.read())


def check_queries_unedited(path: str) -> None:
  """The queries file is the one the run wrote (its ``.sha256`` beside it), else a
  ``WorkdirError``: an edited id would be trained on as if the strategy had picked it."""
  sidecar = path + ".sha256"
  if not os.path.exists(sidecar):
    raise WorkdirError(f"{sidecar} is missing: the run cannot tell whether {path} is the "
                       "file it wrote. Remove the queries file to have the round asked "
                       "again. Nothing was changed.")
  with open(sidecar, encoding="utf-8") as f:
    want = f.read().strip()
  if queries_digest(path) != want:
    raise WorkdirError(f"{path} was edited after the run wrote it (its sha256 is not the one "
                       f"in {os.path.basename(sidecar)}): answer the queries as asked in "
                       "labels/, never edit the queries; restore the file, or remove it to "
                       "have the round asked again. Nothing was changed.")


def _cell(value: Any) -> str:
  if isinstance(value, (float, np.floating)):
    return f"{float(value):.4f}"
  return str(value)


def read_queries(path: str) -> tuple[list[int], list[dict[str, str]]]:
  """(ids in query order, the rows as dicts) of a queries file."""
  rows = csv_files.as_dicts(csv_files.read_rows(path, WorkdirError))
  try:
    return [parse_id(row["id"]) for row in rows], rows
  except (KeyError, ValueError) as e:
    raise WorkdirError(f"{path} is not a queries file of this run ({e}); it was edited. "
                       "Restore it, or remove it to have the round asked again.") from None


class SavedAnswer(NamedTuple):
  label: str
  annotator: str
  line: int


def saved_answers(path: str) -> dict[int, SavedAnswer]:
  """What an answers file holds, read leniently (no checks; ``read_answers`` checks): id ->
  (label, annotator, line number); rows without an integer id are passed over; {} when
  the file does not exist."""
  if not os.path.exists(path):
    return {}
  rows = csv_files.read_rows(path, LabelsError)
  out = {}
  for line, row in enumerate(rows[1:], start=2):
    if len(row) < 2:
      continue
    try:
      example_id = parse_id(row[0])
    except ValueError:
      continue
    out[example_id] = SavedAnswer(row[1].strip(), row[2].strip() if len(row) > 2 else "",
                                  line)
  return out


def read_answers(path: str, queried: Sequence[int], class_names: Sequence[str],
                 ledger_labels: Mapping[int, str], r: int) -> dict[int, tuple[str, str]]:
  """The answers file of round ``r``: id -> (class name or ``skip``, annotator).

  Raises ``LabelsError`` naming the file and line for a wrong header, an id not queried
  this round (or one the ledger already labels differently), a repeated id, an empty label
  or a label that is not a class name.
  """
  classes = set(class_names)
  queried_set = {as_id(i) for i in queried}
  rows = csv_files.read_rows(path, LabelsError)
  if not rows:
    return {}
  header = [h.strip().lower() for h in rows[0]]
  if header[:2] != list(LABELS_HEADER) or header[2:] not in ([], ["annotator"]):
    raise LabelsError(f"{path}, line 1: the header is {rows[0]}; it must be id,label or "
                      "id,label,annotator. Nothing was changed.")
  answers: dict[int, tuple[str, str]] = {}
  lines: dict[int, int] = {}
  for line, row in enumerate(rows[1:], start=2):
    if not row or not any(v.strip() for v in row):
      continue
    where = f"{path}, line {line}"
    if len(row) > len(header):
      raise LabelsError(f"{where}: {len(row)} fields, the header has {len(header)} (quote a "
                        "label that holds a comma). Nothing was changed.")
    raw_id, label = row[0].strip(), (row[1].strip() if len(row) > 1 else "")
    annotator = row[2].strip() if len(row) > 2 else ""
    try:
      example_id = parse_id(raw_id)
    except ValueError as e:
      raise LabelsError(f"{where}: {e}. Nothing was changed.") from None
    if example_id not in queried_set:
      if example_id in ledger_labels:
        raise LabelsError(
            f"{where}: id {example_id} was labelled {ledger_labels[example_id]!r} in an "
            f"earlier round and the ledger keeps that answer; it is not a query of round "
            f"{r}. Remove the line. Nothing was changed.")
      raise LabelsError(f"{where}: id {example_id} is not one of round {r}'s queries "
                        f"(queries/round_{r:03d}.csv). Nothing was changed.")
    if example_id in answers:
      raise LabelsError(f"{where}: id {example_id} is answered twice (also on line "
                        f"{lines[example_id]}). Keep one. Nothing was changed.")
    if not label:
      raise LabelsError(f"{where}: id {example_id} has an empty label; write a class name, "
                        f"or {SKIP!r} if it cannot be labelled. Nothing was changed.")
    if label not in classes and label.lower() != SKIP:
      shown = ", ".join(list(class_names)[:20]) + (" ..." if len(class_names) > 20 else "")
      raise LabelsError(f"{where}: {label!r} (id {example_id}) is not a class name; use one "
                        f"of {shown}, or {SKIP!r}. Nothing was changed.")
    answers[example_id] = (SKIP if label.lower() == SKIP and label not in classes else label,
                           annotator)
    lines[example_id] = line
  return answers


def collect(workdir: str, r: int, queried: Sequence[int], class_names: Sequence[str],
            ledger_labels: Mapping[int, str], *, close: bool = False,
            person: Person | None = None) -> Answers:
  """Round ``r``'s answers, once complete (or the round closed); else ``LabelsNeeded``.

  ``person``: called first, to write the answers file (a simulated person); ``close``: take
  what is there now (the ``.closed`` marker says the same).
  """
  q_path, l_path = queries_path(workdir, r), labels_path(workdir, r)
  if person is not None and not _complete(l_path, queried, class_names, ledger_labels, r):
    person(q_path, l_path, r)
  answers = read_answers(l_path, queried, class_names, ledger_labels, r) if os.path.exists(
      l_path) else {}
  closed = close or os.path.exists(closed_path(workdir, r))
  missing = [as_id(i) for i in queried if as_id(i) not in answers]
  if missing and not closed:
    if answers:
      raise LabelsNeeded(
          f"round {r}: {l_path} answers {len(answers)} of {len(queried)} queries; answer the "
          f"other {len(missing)} (ids {missing[:5]}{' ...' if len(missing) > 5 else ''}) and "
          "run the same command again, or end the round with what is there: add "
          "--close_round (or press 'End round' in the labelling page)")
    raise LabelsNeeded(
        f"round {r}: label the {len(queried)} examples in {q_path}: write {l_path} "
        "(header id,label[,annotator]; a class name per id, or 'skip'), or run "
        f"`python -m rlmba_jax.label --workdir={workdir}` for a labelling page; then run "
        "the same command again")
  if closed and missing and not os.path.exists(closed_path(workdir, r)):
    durable.write_atomic(closed_path(workdir, r), f"closed with {len(answers)} answers\n")
  index = {c: i for i, c in enumerate(class_names)}
  labels, skipped, annotators = [], [], {}
  for i in (as_id(i) for i in queried):
    label, who = answers.get(i, (None, ""))
    labels.append(index[label] if label is not None and label != SKIP else None)
    if label == SKIP:
      skipped.append(i)
    if who:
      annotators[i] = who
  return Answers([as_id(i) for i in queried], labels, skipped, annotators)


def _complete(path: str, queried, class_names, ledger_labels, r) -> bool:
  if not os.path.exists(path):
    return False
  return len(read_answers(path, queried, class_names, ledger_labels, r)) == len(queried)


def check_answer_files(workdir: str, entries: Sequence[Mapping[str, Any]]) -> None:
  """Every answers file of a round already in the ledger still says what the ledger does
  (the ledger is the record: an answer edited afterwards is refused, not silently
  dropped)."""
  for entry in entries:
    if "labels" not in entry:
      continue
    asked = queries_path(workdir, entry["round"])
    if "queries" in entry and os.path.exists(asked) and queries_digest(asked) != entry["queries"]:
      raise WorkdirError(f"{asked} changed after round {entry['round']} was ingested (the "
                         "ledger records the sha256 of the queries that were answered). "
                         "Restore it. Nothing was changed.")
    path = labels_path(workdir, entry["round"])
    committed = {as_id(i): (SKIP if as_id(i) in set(entry.get("skipped", ())) else l)
                 for i, l in zip(entry["ids"], entry["labels"])}
    for example_id, (said, _, line) in saved_answers(path).items():
      was = committed.get(example_id)
      if was is not None and said and said != was:
        raise LabelsError(
            f"{path}, line {line}: id {example_id} now says {said!r} but the ledger recorded "
            f"{was!r} when round {entry['round']} was ingested; the ledger is the record of "
            "what was labelled. Restore the answer in the file (relabelling is not "
            "supported). Nothing was changed.")


class SimulatedPerson:
  """Answers queries from ground truth through the files a person would write.

  Args:
    truth: id -> class name.
    noise: probability of answering a wrong class (drawn uniformly among the others).
    skip: probability of answering ``skip``.
    answer_fraction: fraction of each round's queries answered per call (a person who
      stops half-way); 1.0 answers all.
    seed: each item's draws are seeded by (seed, id): an item gets the same answer however
      the rounds are answered (all at once, in parts, after a crash).
    annotator: written in the annotator column.
  """

  def __init__(self, truth: Mapping[int, str], *, noise: float = 0.0, skip: float = 0.0,
               answer_fraction: float = 1.0, seed: int = 0, annotator: str = "simulated"):
    if not 0 <= noise <= 1 or not 0 <= skip <= 1 or not 0 < answer_fraction <= 1:
      raise ValueError("noise and skip must be in [0, 1], answer_fraction in (0, 1]")
    self.truth = {parse_id(str(k)): str(v) for k, v in truth.items()}
    self.noise, self.skip, self.fraction = noise, skip, answer_fraction
    self.seed, self.annotator = seed, annotator

  def __call__(self, queries_file: str, labels_file: str, r: int) -> None:
    ids, _ = read_queries(queries_file)
    classes = read_class_names(os.path.dirname(os.path.dirname(queries_file)))
    done = saved_answers(labels_file)
    del r
    todo = [i for i in ids if i not in done]
    todo = todo[:max(1, int(np.ceil(self.fraction * len(ids))))]
    rows = [[i, done[i].label, done[i].annotator] for i in ids if i in done]
    for i in todo:
      if i not in self.truth:
        raise KeyError(f"the simulated person has no true label for id {i}")
      label = self.truth[i]
      key = i if isinstance(i, int) else int(_sha256(i.encode())[:15], 16)  # a text id
      rng = np.random.default_rng([self.seed, key])
      if rng.random() < self.skip:
        label = SKIP
      elif rng.random() < self.noise:
        label = str(rng.choice([c for c in classes if c != label]))
      rows.append([i, label, self.annotator])
    write_answers(labels_file, rows)


def write_answers(path: str, rows: Sequence[Sequence[Any]]) -> None:
  """Writes an answers file atomically: rows of (id, label[, annotator])."""
  buffer = io.StringIO()
  w = csv.writer(buffer, lineterminator="\n")
  w.writerow(["id", "label", "annotator"])
  for row in rows:
    w.writerow([row[0], row[1], row[2] if len(row) > 2 else ""])
  os.makedirs(os.path.dirname(path), exist_ok=True)
  durable.write_atomic(path, buffer.getvalue())


def answered(entry: Mapping[str, Any]) -> np.ndarray:
  """``[K]`` bool over a ledger line's ids: labelled (not skipped or left unanswered)."""
  if "labels" not in entry:
    return np.ones(len(entry["ids"]), bool)
  return np.asarray([l is not None for l in entry["labels"]], bool)
