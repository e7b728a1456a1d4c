"""Sweeps and searches run their runs in this process with one worker: the same results as
separate processes, the same exit codes, each run's output in its log.txt."""

import json
import os
import subprocess

import pytest

from conftest import REPO, read_ledger, read_rounds
from rlmba_jax.studies import sweeps


CONFIG = os.path.join(REPO, "configs", "mfeat.py")
# conftest.make_tiny_config's settings, so the runs reuse the programs other tests compiled
COMMON = ["--config.data.source=files", "--config.eval.tensorboard=false",
          "--config.al.initial_size=20", "--config.al.budget_per_round=10",
          "--config.al.rounds=1", "--config.train.num_epochs=20",
          "--config.train.learning_rate=0.005", "--config.train.batch_size=32",
          "--config.train.eval_batch_size=256", "--config.model.width=32",
          "--config.model.hidden=(32,)", "--config.model.conv_channels=(8,16)",
          "--config.data.modalities=fou,fac,kar,zer,mor"]
ENTRIES = [("random", "random", {}), ("entropy", "entropy", {}),
           ("unknown_key", "random", {"al.nope": "1"}), ("unknown_strategy", "nope", {})]


def _plan(root, entries=ENTRIES):
  return [sweeps.plan_run(CONFIG, str(root / label / "seed0"), strategy, 0, overrides,
                          COMMON) for label, strategy, overrides in entries]


def _exits(out: str, root) -> dict[str, int]:
  lines = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
  return {os.path.relpath(l["run"], root).split(os.sep)[0]: l["exit"] for l in lines}


@pytest.mark.slow  # four mfeat runs, two of them in their own processes
def test_one_worker_runs_in_this_process_with_the_results_of_separate_processes(
    tmp_path, capsys):
  inside, apart = tmp_path / "inside", tmp_path / "apart"
  failed = sweeps.run_jobs([_plan(inside)], workers=1, compile_cache="", progress="off")
  out = capsys.readouterr()
  assert "in this process" in out.out
  assert "round 1/" not in out.err  # the runs' lines went to their log.txt
  exits_inside = _exits(out.out, inside)
  sweeps.run_jobs([_plan(apart, ENTRIES[:3])], workers=1, compile_cache="", progress="off",
                  separate_processes=True)
  exits_apart = _exits(capsys.readouterr().out, apart)
  assert exits_inside == {"random": 0, "entropy": 0, "unknown_key": 2, "unknown_strategy": 2}
  assert exits_apart == {"random": 0, "entropy": 0, "unknown_key": 2}
  assert sorted(os.path.basename(os.path.dirname(f)) for f in failed) == [
      "unknown_key", "unknown_strategy"]
  for label in ("random", "entropy"):
    a, b = inside / label / "seed0", apart / label / "seed0"
    assert read_ledger(a) == read_ledger(b)
    assert read_rounds(a) == read_rounds(b)
    log = (a / "log.txt").read_text()
    assert f"done: {label} seed 0" in log and "round 1/1" in log
  assert "nope" in (inside / "unknown_strategy" / "seed0" / "log.txt").read_text()
  assert "al.nope" in (inside / "unknown_key" / "seed0" / "log.txt").read_text()


def test_by_default_one_run_per_two_cores_on_cpu_and_one_on_an_accelerator(monkeypatch):
  assert sweeps.default_workers() == max(1, (os.cpu_count() or 2) // 2)  # this machine: CPU
  asked = {}

  def gpu(command, **kwargs):
    asked.update(kwargs["env"])
    return subprocess.CompletedProcess(command, 0, stdout="gpu\n", stderr="")

  monkeypatch.setattr(sweeps.subprocess, "run", gpu)
  assert sweeps.default_workers() == 1
  assert asked["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"  # the probe claims no memory


def test_ctrl_c_in_a_run_stops_the_sweep_saying_what_is_kept(tmp_path, capsys, monkeypatch):
  import logging

  from rlmba_jax import experiment

  def interrupted(config, workdir, **kwargs):
    raise KeyboardInterrupt

  monkeypatch.setattr(experiment, "run", interrupted)
  levels = [h.level for h in logging.getLogger().handlers]
  with pytest.raises(KeyboardInterrupt):
    sweeps.run_jobs([_plan(tmp_path, ENTRIES[:2])], workers=1, compile_cache="",
                    progress="off")
  err = capsys.readouterr().err
  assert "interrupted: finished runs are kept" in err
  assert [h.level for h in logging.getLogger().handlers] == levels  # the console is back
  assert (tmp_path / "random" / "seed0" / "log.txt").exists()
  assert not (tmp_path / "entropy").exists()  # nothing started after Ctrl-C


@pytest.mark.slow  # three seeds as two seed-batched runs, in this process
def test_an_entrys_seeds_run_in_seed_blocks_that_readers_find(tmp_path):
  from rlmba_jax.studies import report
  entry = str(tmp_path / "runs" / "entropy")
  jobs = sweeps.plan_seed_runs(CONFIG, entry, "entropy", [0, 1, 2], {}, COMMON, rounds=1,
                               seeds_per_program=2)
  assert [os.path.basename(j.workdir) for j in jobs] == ["seeds_0000-0001",
                                                         "seeds_0002-0002"]
  assert "--seeds=0-1" in jobs[0].command and jobs[0].seed_rounds == 4
  assert not sweeps.run_jobs([jobs], workers=1, compile_cache="", progress="off")
  folders = sweeps.seed_run_folders(entry)
  assert sorted(folders) == [0, 1, 2]
  assert folders[1].endswith(os.path.join("seeds_0000-0001", "seed_0001"))
  # one seed-batched workdir given itself: its own seeds only (a sibling block's seeds were
  # once found through the parent folder, pairing one strategy's runs with another's)
  block = sweeps.seed_run_folders(os.path.join(entry, "seeds_0002-0002"))
  assert block == {2: folders[2]}
  assert sweeps.plan_seed_runs(CONFIG, entry, "entropy", [0, 1, 2], {}, COMMON,
                               rounds=1) == []  # all finished
  runs = report.collect(str(tmp_path))
  assert sorted(runs["entropy"]) == [0, 1, 2] and len(runs["entropy"][2]) == 2
  # A seed added later goes into a new block; the finished ones are not run again.
  more = sweeps.plan_seed_runs(CONFIG, entry, "entropy", [0, 1, 2, 3], {}, COMMON, rounds=1)
  assert [os.path.basename(j.workdir) for j in more] == ["seeds_0003-0003"]


def test_campaign_progress_reads_finished_and_running_blocks_from_the_folders(tmp_path,
                                                                              capsys):
  import importlib.util
  spec = importlib.util.spec_from_file_location(
      "campaign_progress", os.path.join(REPO, "launch", "campaign_progress.py"))
  progress = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(progress)

  def write(path, text=""):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
      f.write(text)

  runs = tmp_path / "campaign" / "av" / "runs"
  for first in (1000, 1010):  # two finished blocks, then a gap, then one more
    write(str(runs / "margin" / f"seeds_{first}-{first + 9}" / "summary.json"), "{}")
  write(str(runs / "margin" / "seeds_1030-1039" / "summary.json"), "{}")
  # a running block: its slowest seed has round 0 and round 1
  write(str(runs / "margin" / "seeds_1040-1049" / "seed_1040" / "rounds.jsonl"), "{}\n" * 3)
  write(str(runs / "margin" / "seeds_1040-1049" / "seed_1041" / "rounds.jsonl"), "{}\n" * 2)
  os.makedirs(runs / "random" / "seeds_1000-1009" / "checkpoints")
  assert progress.sweep_progress(str(tmp_path / "campaign" / "av")) == {
      "margin": {"seeds_1000-1009": "finished", "seeds_1010-1019": "finished",
                 "seeds_1030-1039": "finished", "seeds_1040-1049": "round 1"},
      "random": {"seeds_1000-1009": "started"}}
  assert progress.main(["x", str(tmp_path / "campaign")]) == 0
  out = capsys.readouterr().out
  assert "av: 3 of 5 row blocks finished" in out
  assert ("margin: seeds 1000-1019 finished (2 blocks); seeds 1030-1039 finished (1 block); "
          "seeds_1040-1049 round 1") in out
  assert progress.main(["x", str(tmp_path / "nothing")]) == 2
