"""Your own arrays, and a person as the oracle: queries out, answers in, exact resume.

The person is ``SimulatedPerson``, which writes the same answers files a human would (or the
tests write them by hand, bad ones included).
"""

import csv
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, Crash, apply_overrides, crash_at, read_ledger, read_rounds
from rlmba_jax.data import load_dataset
from rlmba_jax.data.arrays import UNLABELLED, write_demo_folder
from rlmba_jax.experiment import EXIT_CODES, DataError, LabelsError, LabelsNeeded, run
from rlmba_jax.experiment.config import default_config
from rlmba_jax.person import SimulatedPerson, files


SIZES = dict(pool_size=160, val_size=60, test_size=60)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  return write_demo_folder(str(tmp_path_factory.mktemp("own") / "data"), **SIZES)


@pytest.fixture(scope="module")
def truth(folder):
  with open(os.path.join(folder, "truth.csv")) as f:
    return {int(r["id"]): r["label"] for r in csv.DictReader(f)}


def own_config(folder, **overrides):
  c = default_config()
  c.data.name = "arrays"
  c.data.modalities = ""
  c.data.manual_dir = folder
  c.al.oracle = "person"
  c.al.initial_size = 10
  c.al.budget_per_round = 10
  c.al.rounds = 2
  c.train.num_epochs = 5
  c.train.batch_size = 32
  c.train.eval_batch_size = 256
  c.model.width = 16
  c.model.hidden = (16,)
  return apply_overrides(c, overrides)


def _copy(folder, tmp_path, edit):
  """A copy of the demo folder with ``edit(path)`` applied."""
  dst = str(tmp_path / "data")
  shutil.copytree(folder, dst)
  edit(dst)
  return dst


def _rewrite_csv(path, change):
  with open(path) as f:
    lines = f.read().splitlines()
  with open(path, "w") as f:
    f.write("\n".join(change(lines)) + "\n")


def _save(name, change):
  def edit(d):
    x = np.load(os.path.join(d, name))
    np.save(os.path.join(d, name), change(x))
  return edit


# Each bad folder is refused with a message naming the file and the row.
@pytest.mark.parametrize("edit,message", [
    (_save("fou.npy", lambda x: x[:-1]), r"fou.npy has 279 rows but .*examples.csv has 280"),
    (_save("kar.npy", lambda x: np.where(np.arange(len(x))[:, None] == 7, np.nan, x)),
     r"kar.npy: row 7 \(id 1007"),
    (_save("fou.npy", lambda x: x[:, 0]), r"fou.npy has shape \(280,\)"),
    (lambda d: _rewrite_csv(os.path.join(d, "examples.csv"),
                            lambda l: l[:3] + [l[1]] + l[4:]), r"line 4: id 1000 repeats line 2"),
    (lambda d: _rewrite_csv(os.path.join(d, "examples.csv"),
                            lambda l: [x if i != 170 else x.rsplit(",", 1)[0] + ","
                                       for i, x in enumerate(l)]),
     r"line 171: the val row of id 1169 has no label"),
    (lambda d: _rewrite_csv(os.path.join(d, "examples.csv"),
                            lambda l: l[:5] + ["1004,pool"] + l[6:]),
     r"line 6: 2 fields, the header has 3"),
    (lambda d: _rewrite_csv(os.path.join(d, "examples.csv"),
                            lambda l: l[:5] + ["1004,train,"] + l[6:]),
     r"line 6: split 'train' is not one of pool, val, test"),
    (lambda d: _rewrite_csv(os.path.join(d, "examples.csv"),
                            lambda l: ["id,part,label"] + l[1:]), r"line 1: the header"),
    (lambda d: _rewrite_csv(os.path.join(d, "examples.csv"),
                            lambda l: l[:5] + [",pool,"] + l[6:]),
     r"line 6: an empty id"),
    (lambda d: _rewrite_csv(os.path.join(d, "examples.csv"),
                            lambda l: l[:200] + ["1199,val,eleven"] + l[201:]),
     r"labels \['eleven'\] that .*classes.txt does not list"),
])
def test_bad_arrays_folders_are_refused_naming_file_and_row(folder, tmp_path, edit, message):
  bad = _copy(folder, tmp_path, edit)
  workdir = tmp_path / "run"
  with pytest.raises(DataError, match=message):
    run(own_config(bad), str(workdir))
  assert not workdir.exists()


def test_arrays_load_like_a_built_in_data_set(folder):
  c = own_config(folder)
  data = load_dataset(c.data)
  assert data.modality_names == ("fou", "kar")
  assert data.class_names[:2] == ("zero", "one") and data.num_classes == 10
  assert (len(data.pool), len(data.val), len(data.test)) == (160, 60, 60)
  assert (data.pool.labels == UNLABELLED).all() and (data.val.labels >= 0).all()
  # standardised with the pool's statistics, as the built-in data sets are
  np.testing.assert_allclose(data.pool.inputs["fou"].mean(0), 0, atol=1e-4)
  c.data.modalities = "kar"
  assert load_dataset(c.data).modality_names == ("kar",)
  c.data.modalities = "kar,pix"
  with pytest.raises(ValueError, match=r"names \['pix'\].*holds arrays for \['fou', 'kar'\]"):
    load_dataset(c.data)


def test_the_data_set_cannot_answer_for_an_unlabelled_pool(folder, tmp_path):
  with pytest.raises(DataError, match="have no label.*al.oracle='person'"):
    run(own_config(folder, **{"al.oracle": "dataset"}), str(tmp_path / "w"))
  assert not (tmp_path / "w").exists()


def _answer_until_done(config, workdir, person, **kwargs):
  while True:
    try:
      return run(config, workdir, person=person, **kwargs)
    except LabelsNeeded:
      pass


@pytest.fixture(scope="module")
def reference(folder, truth, tmp_path_factory):
  """Three rounds answered by a simulated person who skips 20 % of the items."""
  workdir = str(tmp_path_factory.mktemp("person") / "reference")
  person = SimulatedPerson(truth, skip=0.2, seed=3)
  summary = run(own_config(folder), workdir, person=person)
  return workdir, summary


def test_a_person_answers_through_files_and_the_ledger_keeps_what_they_said(
    reference, truth):
  workdir, summary = reference
  assert summary["rounds"] == 2
  ledger = read_ledger(workdir)
  assert [e["round"] for e in ledger] == [0, 1, 2]
  skipped_before = set()
  for entry in ledger:
    r = entry["round"]
    asked, rows = files.read_queries(files.queries_path(workdir, r))
    assert entry["ids"] == asked  # the ledger records the query, in order
    assert not skipped_before & set(asked)  # a skipped item is never asked again
    for i, label in zip(entry["ids"], entry["labels"]):
      assert (label is None) == (i in entry["skipped"])
      assert label is None or label == truth[i]
    skipped_before |= set(entry["skipped"])
    assert list(rows[0])[:4] == ["id", "fou", "kar", "image"]
    assert rows[0]["predicted"] == "" if r == 0 else rows[0]["predicted"] in truth.values()
  assert skipped_before  # 20 % skips over 30 items
  rounds = read_rounds(workdir)
  for r, entry in zip(rounds, ledger):
    assert r["skipped"] == len(entry["skipped"])
  assert rounds[-1]["num_labeled"] == sum(
      sum(l is not None for l in e["labels"]) for e in ledger)


def test_stop_and_go_with_bad_files_partial_answers_and_a_crash_ends_as_one_run(
    reference, folder, truth, tmp_path):
  """Exit code 3 between rounds, a rejected answers file, half a round, a crash right
  after the answers were committed: the same ledger and metrics as the reference."""
  ref_dir, _ = reference
  workdir = str(tmp_path / "w")
  config = own_config(folder)
  person = SimulatedPerson(truth, skip=0.2, seed=3)
  with pytest.raises(LabelsNeeded, match="round 0: label the 10 examples"):
    run(config, workdir)
  assert LabelsNeeded.exit_code == 3 and 3 in EXIT_CODES
  person(files.queries_path(workdir, 0), files.labels_path(workdir, 0), 0)
  with pytest.raises(LabelsNeeded, match="round 1"):
    run(config, workdir)
  # a bad answers file: refused, naming file and line; nothing changes
  ledger_before = open(os.path.join(workdir, "ledger.jsonl")).read()
  asked, _ = files.read_queries(files.queries_path(workdir, 1))
  l1 = files.labels_path(workdir, 1)
  files.write_answers(l1, [(asked[0], truth[asked[0]]), (asked[1], "cat")])
  with pytest.raises(LabelsError, match=r"round_001.csv, line 3: 'cat' \(id "):
    run(config, workdir)
  assert open(os.path.join(workdir, "ledger.jsonl")).read() == ledger_before
  # half the answers: the round waits for the rest
  os.remove(l1)
  SimulatedPerson(truth, skip=0.2, seed=3, answer_fraction=0.5)(
      files.queries_path(workdir, 1), l1, 1)
  with pytest.raises(LabelsNeeded, match="answers 5 of 10 queries"):
    run(config, workdir)

  with pytest.raises(Crash):  # answers the rest, commits them, stops before training
    run(config, workdir, person=person, phase_callback=crash_at(1, "labelled"))
  assert len(read_ledger(workdir)) == 2
  _answer_until_done(config, workdir, person)
  assert read_ledger(workdir) == read_ledger(ref_dir)
  assert read_rounds(workdir) == read_rounds(ref_dir)


def test_closing_a_round_returns_the_unanswered_items_to_the_pool(folder, truth, tmp_path):
  workdir = str(tmp_path / "w")
  config = own_config(folder, **{"al.rounds": 1})
  person = SimulatedPerson(truth)
  with pytest.raises(LabelsNeeded, match="round 0"):
    run(config, workdir, close_round=True)  # never closes a round nobody has seen
  person(files.queries_path(workdir, 0), files.labels_path(workdir, 0), 0)
  with pytest.raises(LabelsNeeded):
    run(config, workdir)
  asked, _ = files.read_queries(files.queries_path(workdir, 1))
  files.write_answers(files.labels_path(workdir, 1),
                       [(asked[0], truth[asked[0]]), (asked[1], "skip")])
  summary = run(config, workdir, close_round=True)  # closes round 1, not a fresh round 2
  entry = read_ledger(workdir)[1]
  assert entry["labels"][:2] == [truth[asked[0]], None] and entry["skipped"] == [asked[1]]
  assert entry["labels"][2:] == [None] * 8
  assert os.path.exists(files.closed_path(workdir, 1))
  assert summary["final"]["num_labeled"] == 11
  assert read_rounds(workdir)[1]["unanswered"] == 8


def test_an_answer_edited_after_it_was_committed_is_refused(reference, folder, tmp_path):
  ref_dir, _ = reference
  workdir = str(tmp_path / "w")
  shutil.copytree(ref_dir, workdir)
  path = files.labels_path(workdir, 1)
  with open(path) as f:
    rows = list(csv.reader(f))
  i = next(k for k, row in enumerate(rows[1:], 1) if row[1] != "skip")
  rows[i][1] = "zero" if rows[i][1] != "zero" else "one"
  with open(path, "w", newline="") as f:
    csv.writer(f).writerows(rows)
  config = own_config(folder)
  with pytest.raises(LabelsError, match=rf"round_001.csv, line {i + 1}: id .* the ledger "
                                        "recorded"):
    run(config, workdir)


def test_round_zero_is_drawn_among_the_labelled_pool_rows(folder, tmp_path):
  def label_some(d):  # label the first 30 pool rows from truth.csv
    with open(os.path.join(d, "truth.csv")) as f:
      truth = {r["id"]: r["label"] for r in csv.DictReader(f)}
    _rewrite_csv(os.path.join(d, "examples.csv"), lambda lines: [
        l + truth[l.split(",")[0]] if 1 <= k <= 30 else l for k, l in enumerate(lines)])
  data_dir = _copy(folder, tmp_path, label_some)
  workdir = str(tmp_path / "w")
  with pytest.raises(LabelsNeeded, match="round 1"):
    run(own_config(data_dir), workdir)
  entry = read_ledger(workdir)[0]
  assert "labels" not in entry and set(entry["ids"]) <= set(range(1000, 1030))
  assert not os.path.exists(files.queries_path(workdir, 0))


@pytest.mark.slow
def test_the_command_line_exits_3_and_names_the_files(folder, tmp_path):
  workdir = str(tmp_path / "w")
  cmd = [sys.executable, "-m", "rlmba_jax.main", "--config=configs/arrays.py:person,runlocal",
         f"--workdir={workdir}", f"--config.data.manual_dir={folder}",
         "--config.al.initial_size=10", "--config.al.budget_per_round=10"]
  out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
  assert out.returncode == 3, out.stderr[-2000:]
  assert "LabelsNeeded: round 0: label the 10 examples" in out.stderr
  assert "round_000.csv" in out.stderr


def test_load_model_predicts_new_inputs_as_the_run_evaluated_them(reference, folder):
  from rlmba_jax.inference import load_model
  workdir, _ = reference
  model = load_model(workdir)
  assert model.round == 2 and model.modality_names == ("fou", "kar")
  with open(os.path.join(folder, "examples.csv")) as f:
    rows = list(csv.DictReader(f))
  test = np.asarray([r["split"] == "test" for r in rows])
  raw = {m: np.load(os.path.join(folder, f"{m}.npy"))[test] for m in ("fou", "kar")}
  out = model.predict(raw)
  truth = np.asarray([r["label"] for r in rows])[test]
  assert out["predicted"].shape == (60,) and set(out["modality_predicted"]) == {"fou", "kar"}
  np.testing.assert_allclose(np.mean(out["predicted"] == truth),
                             read_rounds(workdir)[-1]["test_top1"], atol=1e-6)
  assert out["uncertainty"].shape == (60,) and np.isfinite(out["uncertainty"]).all()
  assert load_model(workdir, round=1).num_labeled == read_rounds(workdir)[1]["num_labeled"]
  with pytest.raises(ValueError, match=r"lack modalities \['kar'\]"):
    model.predict({"fou": raw["fou"]})
  with pytest.raises(ValueError, match=r"inputs of shape \(75,\)"):
    model.predict({"fou": raw["fou"][:, 1:], "kar": raw["kar"]})


def test_any_strategy_runs_on_your_own_model_outputs():
  import jax

  from rlmba_jax import selection
  from rlmba_jax.selection import PoolView
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(50, 4))
  probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  labelled = np.arange(50) < 5
  view = PoolView.from_arrays(probs, labelled=labelled, strategy="margin")
  picks = np.asarray(selection.get_strategy("margin")(jax.random.key(0), view, 5))
  top2 = np.sort(probs, -1)[:, -2:]
  margin = np.where(labelled, np.inf, top2[:, 1] - top2[:, 0])
  assert sorted(picks.tolist()) == sorted(np.argsort(margin)[:5].tolist())
  features = {"a": rng.normal(size=(50, 3))}
  view = PoolView.from_arrays(probs, {"a": probs}, features, labelled, strategy="badge")
  assert len(set(np.asarray(selection.get_strategy("badge")(jax.random.key(0), view, 5)))) == 5
  with pytest.raises(ValueError, match=r"'badge' reads .*missing: \['features'\]"):
    PoolView.from_arrays(probs, strategy="badge")
  with pytest.raises(ValueError, match=r"'rlmba' reads .*missing: \['modality_alphas', "
                                       r"'modality_weights'\]"):
    PoolView.from_arrays(probs, {"a": probs}, features, strategy="rlmba")
  with pytest.raises(ValueError, match="disagree on the pool size"):
    PoolView.from_arrays(probs, features={"a": np.zeros((49, 3))})


@pytest.mark.slow
def test_your_own_photos_sounds_and_texts_built_into_array_record_and_labelled(tmp_path):
  """data.name=items: an ArrayRecord copy built from images/, audio/ and text/ with the
  paper's transforms and encoders (BERT for the text), the pool
  labelled by a person."""
  from rlmba_jax.data.items import write_demo_items
  from rlmba_jax.paper_configs import runlocal
  folder = write_demo_items(str(tmp_path / "items"))
  with open(os.path.join(folder, "truth.csv")) as f:
    truth = {int(r["id"]): r["label"] for r in csv.DictReader(f)}
  c = default_config()
  runlocal(c)
  c.data.fixture = False
  c.data.name, c.data.modalities, c.data.manual_dir = "items", "", folder
  c.data.data_dir = str(tmp_path / "tfds")
  c.data.standardize = False
  c.model.encoders = ""  # CNNs for the photo and the log-STFT, BERT for the text
  c.al.oracle = "person"
  data = load_dataset(c.data)
  assert data.modality_names == ("image", "audio", "text") and data.streamed
  assert (len(data.pool), len(data.val), len(data.test)) == (40, 12, 12)
  assert (data.pool.labels == UNLABELLED).all()
  workdir = str(tmp_path / "run")
  with pytest.raises(LabelsNeeded):
    run(c, workdir)
  _, rows = files.read_queries(files.queries_path(workdir, 0))
  assert rows[0]["images"].startswith("images/") and rows[0]["audio"].startswith("audio/")
  summary = run(c, workdir, person=SimulatedPerson(truth))
  ledger = read_ledger(workdir)
  assert [len(e["ids"]) for e in ledger] == [8, 4]
  assert all(l == truth[i] for e in ledger for i, l in zip(e["ids"], e["labels"]))
  assert summary["final"]["num_labeled"] == 12


# Issue 29, 6 and 7: a file that cannot be read is named in one line, never a traceback.
@pytest.mark.parametrize("content,words", [
    ("\ufeffid,split,label\n0,pool,\n1,val,a\n2,test,b\n3,val,b\n4,test,a\n", None),  # BOM
    (b"id,split,label\n0,pool,\xff\n", "not UTF-8"),
    ("id,split,label\n" + "x" * 201 + ",pool,\n", "longer than 200 characters"),
    ("id,split,label\na\x07b,pool,\n", "control characters"),
    ("id,split,label\n0,pool," + "x" * 140000 + "\n", "field"),
    (None, "is a folder"),
])
def test_examples_csv_faults_are_one_line(tmp_path, content, words):
  from rlmba_jax.data.arrays import ArraysError, read_examples
  path = tmp_path / "examples.csv"
  if content is None:
    path.mkdir()
  elif isinstance(content, bytes):
    path.write_bytes(content)
  else:
    path.write_text(content, encoding="utf-8")
  if words is None:
    ids, splits, labels = read_examples(str(path))
    assert ids.tolist() == [0, 1, 2, 3, 4] and splits[0] == "pool"
    return
  with pytest.raises(ArraysError, match=words):
    read_examples(str(path))


def test_a_modality_with_no_values_per_example_is_refused(tmp_path):
  import numpy as np

  from rlmba_jax.data.arrays import ArraysError, _spec
  with pytest.raises(ArraysError, match="at least one value"):
    _spec("x", "x.npy", np.zeros((5, 0), np.float32))


def test_answers_file_faults_are_one_line(tmp_path):
  from rlmba_jax.errors import LabelsError
  path = tmp_path / "round_001.csv"
  path.write_bytes(b"id,label\n3,\xfe\n")
  with pytest.raises(LabelsError, match="not UTF-8"):
    files.read_answers(str(path), [3], ["a", "b"], {}, 1)
  path.write_text("id,label\n3," + "a" * 140000 + "\n")
  with pytest.raises(LabelsError, match="field"):
    files.read_answers(str(path), [3], ["a", "b"], {}, 1)
  path.unlink()
  path.mkdir()
  with pytest.raises(LabelsError, match="is a folder"):
    files.read_answers(str(path), [3], ["a", "b"], {}, 1)


@pytest.mark.slow
def test_examples_csv_reader_fuzz(tmp_path):
  """Any bytes: rows, or one ArraysError line; never another exception."""
  from hypothesis import given, settings
  from hypothesis import strategies as st

  from rlmba_jax.data.arrays import ArraysError, read_examples
  path = tmp_path / "examples.csv"

  @settings(max_examples=300, deadline=None)
  @given(st.one_of(st.binary(max_size=400),
                   st.text(alphabet="id,splabeltv\n\"\r 0123456789-x\ufeff", max_size=300)))
  def check(data):
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    try:
      read_examples(str(path))
    except ArraysError as e:
      assert "\n" not in str(e).strip()

  check()


# Issue 29, 4: own data and the queries a person answered are what the run started from.
@pytest.mark.slow
def test_own_data_changed_between_invocations_is_refused(tmp_path):
  from rlmba_jax.experiment import DataError
  folder = write_demo_folder(str(tmp_path / "data"), pool_size=80, val_size=40,
                             test_size=40, labelled_pool=True)
  config = own_config(folder, **{"al.oracle": "dataset", "al.rounds": 1})
  workdir = str(tmp_path / "run")
  run(config, workdir)
  path = os.path.join(folder, "examples.csv")
  text = open(path).read().splitlines()
  header = text[0].split(",")
  val = next(i for i, l in enumerate(text) if l.split(",")[header.index("split")] == "val")
  row = text[val].split(",")
  labels = sorted({l.split(",")[header.index("label")] for l in text[1:]} - {""})
  row[header.index("label")] = next(l for l in labels if l != row[header.index("label")])
  text[val] = ",".join(row)
  open(path, "w").write("\n".join(text) + "\n")
  with pytest.raises(DataError, match=r"data files \['examples.csv'\] changed"):
    run(own_config(folder, **{"al.oracle": "dataset", "al.rounds": 2}), workdir)
  assert len(read_rounds(workdir)) == 2  # nothing was changed


@pytest.mark.slow
def test_an_edited_queries_file_is_not_trained_on(tmp_path):
  from rlmba_jax.experiment import LabelsNeeded, WorkdirError
  folder = write_demo_folder(str(tmp_path / "data"), pool_size=80, val_size=40, test_size=40)
  workdir = str(tmp_path / "run")
  config = own_config(folder, **{"al.rounds": 1})
  with pytest.raises(LabelsNeeded):
    run(config, workdir)
  path = files.queries_path(workdir, 0)
  asked, _ = files.read_queries(path)
  with open(os.path.join(folder, "examples.csv")) as f:
    pool = [int(r["id"]) for r in csv.DictReader(f) if r["split"] == "pool"]
  other = next(i for i in pool if i not in asked)
  text = open(path).read()
  open(path, "w").write(text.replace(f"\n{asked[0]},", f"\n{other},", 1))
  with pytest.raises(WorkdirError, match="was edited after the run wrote it"):
    run(config, workdir)


def test_a_relative_manual_dir_is_stored_resolved_and_equivalent_paths_continue(
    tmp_path, monkeypatch):
  import json

  from rlmba_jax.experiment import LabelsNeeded
  folder = write_demo_folder(str(tmp_path / "data"), pool_size=80, val_size=40, test_size=40)
  monkeypatch.chdir(tmp_path)
  workdir = str(tmp_path / "run")
  with pytest.raises(LabelsNeeded):
    run(own_config("data", **{"al.rounds": 1}), workdir)
  stored = json.load(open(os.path.join(workdir, "config.json")))["data"]["manual_dir"]
  assert stored == folder and os.path.isabs(stored)
  monkeypatch.chdir(workdir)  # elsewhere, with the absolute path: the same run
  with pytest.raises(LabelsNeeded, match="round 0"):
    run(own_config(folder, **{"al.rounds": 1}), workdir)


@pytest.mark.slow
def test_a_person_run_may_change_strategy_between_rounds(tmp_path):
  from rlmba_jax.experiment import LabelsNeeded, WorkdirError
  folder = write_demo_folder(str(tmp_path / "data"), pool_size=80, val_size=40, test_size=40)
  with open(os.path.join(folder, "truth.csv")) as f:
    truth = {int(r["id"]): r["label"] for r in csv.DictReader(f)}
  person = files.SimulatedPerson(truth)
  workdir = str(tmp_path / "run")
  plan = [("random", 0), ("margin", 1), ("entropy", 2)]
  for strategy, r in plan:
    config = own_config(folder, **{"al.strategy": strategy})
    with pytest.raises(LabelsNeeded, match=f"round {r}"):
      run(config, workdir)
    person(files.queries_path(workdir, r), files.labels_path(workdir, r), r)
  run(own_config(folder, **{"al.strategy": "entropy"}), workdir)
  assert [e["strategy"] for e in read_ledger(workdir)] == ["random", "margin", "entropy"]
  with pytest.raises(WorkdirError, match="al.strategy"):
    run(own_config(folder, **{"al.strategy": "rlmba", "al.rounds": 3,
                              "model.head": "evidential", "al.rlmba.reward": "absolute"}),
        workdir)


def test_ids_are_integers_when_all_are_else_the_text_as_given(tmp_path):
  from rlmba_jax.data.arrays import read_examples
  path = tmp_path / "examples.csv"
  path.write_text("id,split,label\n12,pool,\n7,val,a\n")
  assert read_examples(str(path))[0].tolist() == [12, 7]
  path.write_text("id,split,label\n12,pool,\n" + "9" * 30 + ",val,a\nimg_3.png,test,b\n"
                  "012,pool,\n")
  ids = read_examples(str(path))[0]
  assert ids.tolist() == ["12", "9" * 30, "img_3.png", "012"]  # as written, "012" too


@pytest.mark.slow
def test_a_person_run_keeps_text_ids_as_given(tmp_path):
  """String ids (file names, keys) in examples.csv go through the queries, the answers
  (files and page), the ledger and the export as written (issue 30, 3)."""
  from rlmba_jax.experiment import LabelsNeeded
  from rlmba_jax.person import page
  folder = write_demo_folder(str(tmp_path / "data"), pool_size=60, val_size=30, test_size=30)
  name = lambda i: f"scan-{i}.png"
  _rewrite_csv(os.path.join(folder, "examples.csv"), lambda l: [l[0]] + [
      ",".join([name(x.split(",", 1)[0])] + x.split(",")[1:]) for x in l[1:]])
  for f in os.listdir(os.path.join(folder, "images")):
    os.rename(os.path.join(folder, "images", f),
              os.path.join(folder, "images", name(f[:-4]) + ".png"))
  with open(os.path.join(folder, "truth.csv")) as f:
    truth = {name(r["id"]): r["label"] for r in csv.DictReader(f)}
  workdir = str(tmp_path / "run")
  config = own_config(folder, **{"al.rounds": 1, "al.strategy": "margin"})
  with pytest.raises(LabelsNeeded, match="round 0"):
    run(config, workdir)
  asked, rows = files.read_queries(files.queries_path(workdir, 0))
  assert all(i.startswith("scan-") for i in asked)
  assert rows[0]["image"] == f"images/{asked[0]}.png"  # the raw item found by its id
  session = page.LabellingSession(workdir)  # one answer through the page's session
  session.answer(asked[0], truth[asked[0]])
  files.SimulatedPerson(truth)(files.queries_path(workdir, 0),
                                files.labels_path(workdir, 0), 0)
  with pytest.raises(LabelsNeeded, match="round 1"):
    run(config, workdir)
  files.SimulatedPerson(truth)(files.queries_path(workdir, 1),
                                files.labels_path(workdir, 1), 1)
  run(config, workdir)
  ledger = read_ledger(workdir)
  assert ledger[0]["ids"] == asked and all(isinstance(i, str) for e in ledger for i in e["ids"])
  assert all(l == truth[i] for e in ledger for i, l in zip(e["ids"], e["labels"]))
  out = str(tmp_path / "answers.csv")
  assert page.export_answers(workdir, out) == 20
  with open(out) as f:
    assert {r["id"]: r["label"] for r in csv.DictReader(f)} == {
        i: truth[i] for e in ledger for i in e["ids"]}


@pytest.mark.slow
def test_answers_file_reader_fuzz(tmp_path):
  """Any bytes in an answers file: answers, or one LabelsError line; never another
  exception (issue 29, 5)."""
  from hypothesis import given, settings
  from hypothesis import strategies as st

  from rlmba_jax.errors import LabelsError
  path = tmp_path / "round_001.csv"

  @settings(max_examples=300, deadline=None)
  @given(st.one_of(st.binary(max_size=300),
                   st.text(alphabet="id,label,annotator\n\"\r 0123ab-skp\ufeff\x00",
                           max_size=200)))
  def check(data):
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    try:
      answers = files.read_answers(str(path), [1, 2, "a"], ["a", "b"], {}, 1)
    except LabelsError as e:
      assert "\n" not in str(e).strip()
    else:
      assert set(answers) <= {1, 2, "a"}
      assert all(label in ("a", "b", "skip") for label, _ in answers.values())

  check()
