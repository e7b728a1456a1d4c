"""The paper configs' runlocal switch runs the whole loop on the fixtures (CPU), resumes
exactly, and the training options they use behave as the reference code's."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import apply_overrides, read_ledger, read_rounds
from rlmba_jax.experiment import run
from rlmba_jax.experiment.start import pretrained_hook
from rlmba_jax.models import build_model, pretrained
from rlmba_jax.paper_configs import paper_config
from rlmba_jax.train.optimizers import lr_factor, make_optimizer


def _runlocal(name, tmp_path, **overrides):
  c = paper_config(name, "runlocal")
  c.data.data_dir = str(tmp_path / "tfds")
  return apply_overrides(c, overrides)


@pytest.mark.slow
# Kinetics-Sounds runs the same clip path and encoders as VGGSound (its own folder layout
# is built in test_paper_data.py); one end-to-end clip run saves a minute of compiling.
@pytest.mark.parametrize("name,strategy", [("upmc_food101", "bmmal"),
                                           ("vggsound", "badge")])
def test_runlocal_end_to_end(name, strategy, tmp_path):
  config = _runlocal(name, tmp_path, **{"al.strategy": strategy})
  summary = run(config, str(tmp_path / "run"))
  assert summary["num_labeled"] == [8, 12]
  ledger = read_ledger(tmp_path / "run")
  assert [len(e["ids"]) for e in ledger] == [8, 4]
  assert not set(ledger[0]["ids"]) & set(ledger[1]["ids"])
  rounds = read_rounds(tmp_path / "run")
  modalities = config.data.modalities.split(",")
  assert sorted(rounds[-1]["per_modality_test_top1"]) == sorted(modalities)
  assert all(np.isfinite(r["train_loss"]) and 0 <= r["test_top1"] <= 1 for r in rounds)
  assert rounds[-1]["train_steps"] == 3 * config.train.num_epochs  # 12 labels, batch 4


@pytest.mark.slow
def test_streamed_run_resumes_exactly(tmp_path):
  """Killed after round 1's ledger line, then restarted: same ledger and metrics."""
  config = _runlocal("upmc_food101", tmp_path, **{"al.strategy": "entropy"})
  run(config, str(tmp_path / "whole"))

  class Killed(Exception):
    pass

  def kill(r, phase):
    if (r, phase) == (1, "labelled"):
      raise Killed

  with pytest.raises(Killed):
    run(config, str(tmp_path / "resumed"), phase_callback=kill)
  run(config, str(tmp_path / "resumed"))
  assert read_ledger(tmp_path / "whole") == read_ledger(tmp_path / "resumed")
  assert read_rounds(tmp_path / "whole") == read_rounds(tmp_path / "resumed")


def test_pretrained_weights_replace_the_random_encoder(tmp_path):
  from safetensors.numpy import save_file

  from rlmba_jax.data import load_dataset
  from rlmba_jax.errors import WorkdirError
  config = _runlocal("kinetics_sounds", tmp_path, **{"data.modalities": "audio"})
  data = load_dataset(config.data)
  model = build_model(config.model, data.modalities, data.num_classes)
  example = {s.name: np.zeros((1,) + s.shape, np.float32) for s in data.modalities}
  # Any values do (the encoder's are replaced, the heads' compared before and after), so
  # random numbers in the model's structure, without compiling its initialiser.
  rng = np.random.default_rng(0)
  variables = jax.tree.map(lambda s: rng.normal(size=s.shape).astype(s.dtype),
                           jax.eval_shape(model.init, jax.random.key(0), example))
  audio = {c: v["encoder_audio"] for c, v in variables.items() if "encoder_audio" in v}
  state = {k: v + 0.5 for k, v in pretrained.export_state_dict(audio).items()}
  state["fc.weight"] = np.zeros((31, 32), np.float32)  # torchvision's head: ignored
  path = str(tmp_path / "audio.safetensors")
  save_file(state, path)
  config.model.pretrained = f"audio={path}"
  loaded = pretrained_hook(config.model)(variables)
  again = pretrained.export_state_dict(
      {c: v["encoder_audio"] for c, v in loaded.items() if "encoder_audio" in v})
  assert set(again) == set(state) - {"fc.weight"}
  for k, v in again.items():
    np.testing.assert_allclose(v, state[k], rtol=1e-6)
  # the heads keep their random initialisation
  np.testing.assert_array_equal(loaded["params"]["head_audio"]["kernel"],
                                variables["params"]["head_audio"]["kernel"])
  del state["layer4.1.bn2.running_var"]
  save_file(state, path)
  with pytest.raises(WorkdirError, match="modality 'audio'.*layer4_1/bn2/var"):
    pretrained_hook(config.model)(variables)


def test_reference_schedule_and_rate_groups():
  factors = [float(lr_factor(jnp.int32(e), jnp.int32(i), jnp.int32(4), 2.0, (3, 5), 0.1))
             for e in range(6) for i in range(4)]
  np.testing.assert_allclose(factors[:8], np.arange(1, 9) / 8)  # per-step warm-up, 2 epochs
  np.testing.assert_allclose(factors[8:12], 1.0)
  np.testing.assert_allclose(factors[12:20], 0.1)  # epochs 3-4
  np.testing.assert_allclose(factors[20:], 0.01, rtol=1e-6)  # epoch 5
  config = paper_config("kinetics_sounds")
  opt = make_optimizer(config.train)
  params = {"encoder_video": {"w": jnp.ones(3)}, "encoder_audio": {"w": jnp.ones(3)},
            "head_video": {"w": jnp.ones(3)}}
  grads = jax.tree.map(jnp.ones_like, params)
  updates, _ = opt.update(grads, opt.init(params), params)
  # Adam's first step moves each parameter by its group's rate (times ~1).
  assert np.allclose(-updates["encoder_video"]["w"], 2e-3, rtol=1e-3)
  assert np.allclose(-updates["encoder_audio"]["w"], 1e-3, rtol=1e-3)
  assert np.allclose(-updates["head_video"]["w"], 1e-3, rtol=1e-3)
