"""What a run shows and writes besides rounds.jsonl: TensorBoard event files (one point per
round, rewritten on resume) and progress bars that leave the numbers unchanged."""

import os
import struct

import pytest

from conftest import Crash, crash_at, make_tiny_config, read_ledger, read_rounds
from rlmba_jax.experiment import run
from rlmba_jax.experiment.event_files import event_files, round_scalars


pytestmark = pytest.mark.slow  # end-to-end runs


def read_scalars(workdir) -> dict[str, list[tuple[int, float]]]:
  """tag -> [(step, value)] from the event files (TFRecord framing, Event protos)."""
  from tensorboardX.proto import event_pb2
  out: dict[str, list] = {}
  for path in event_files(workdir):
    data = open(path, "rb").read()
    i = 0
    while i < len(data):
      (length,) = struct.unpack("<Q", data[i:i + 8])
      event = event_pb2.Event.FromString(data[i + 12:i + 12 + length])
      i += 12 + length + 4
      for v in event.summary.value:
        out.setdefault(v.tag, []).append((event.step, v.simple_value))
  return out


def test_tensorboard_holds_each_rounds_scalars_once_even_after_a_resume(tmp_path):
  workdir = str(tmp_path / "w")
  config = make_tiny_config(**{"al.strategy": "entropy"})

  with pytest.raises(Crash):
    run(config, workdir, phase_callback=crash_at(1, "reported"))
  old = os.path.join(workdir, "tensorboard")  # where earlier versions wrote (run names
  os.makedirs(old)                             # ended in /tensorboard): removed on resume
  open(os.path.join(old, "events.out.tfevents.1.old"), "wb").close()
  run(config, workdir)
  assert not os.path.exists(old)
  assert {os.path.dirname(p) for p in event_files(workdir)} == {workdir}  # run name: workdir
  rounds = read_rounds(workdir)
  scalars = read_scalars(workdir)
  want = [(r["num_labeled"], pytest.approx(r["val_top1"])) for r in rounds]
  assert scalars["val/top1"] == want  # one point per round, x = labels, no duplicates
  assert [s for s, _ in scalars["test/top1"]] == [20, 30, 40]
  for m in ("fou", "mor"):
    assert len(scalars[f"modality_weights/{m}"]) == 3
    assert len(scalars[f"per_modality_val_top1/{m}"]) == 3
  assert "seconds/train" in scalars and "balance" in round_scalars(rounds[0])
  assert "stopping/kappa" in scalars and len(scalars["stopping/kappa"]) == 2  # rounds 1, 2
  events = b"".join(open(p, "rb").read() for p in event_files(workdir))
  assert b'"strategy": "entropy"' in events  # the run's config in the text tab
  # Extended by a round: config.json (and so load_model) holds the rounds it goes on with.
  import json

  from rlmba_jax.inference import load_model
  before = open(os.path.join(workdir, "config.json")).read()
  run(config, workdir)  # a plain resume rewrites nothing
  assert open(os.path.join(workdir, "config.json")).read() == before
  more = make_tiny_config(**{"al.strategy": "entropy", "al.rounds": 3})
  run(more, workdir)
  assert json.load(open(os.path.join(workdir, "config.json")))["al"]["rounds"] == 3
  assert load_model(workdir).config.al.rounds == 3


def test_progress_bars_show_rounds_and_epochs_and_change_no_number(tmp_path, capfd):
  quiet, shown = str(tmp_path / "quiet"), str(tmp_path / "shown")
  run(make_tiny_config(**{"eval.progress": "off", "eval.tensorboard": False}), quiet)
  capfd.readouterr()
  run(make_tiny_config(**{"eval.progress": "on"}), shown)
  err = capfd.readouterr().err
  assert "random" in err and "round" in err and "epoch" in err and "val_top1" in err
  assert read_ledger(quiet) == read_ledger(shown)
  assert read_rounds(quiet) == read_rounds(shown)  # the epoch callback changes nothing
  assert not event_files(quiet)
