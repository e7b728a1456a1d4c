"""Your own Flax encoder, named by import path, inside the library's classifier: a run with
it, and one-line errors for an encoder that cannot be imported or returns the wrong shape."""

import json
import os

import pytest

from conftest import make_tiny_config
from rlmba_jax.experiment import ConfigError, run


def test_a_run_with_your_own_encoder_for_a_modality(tmp_path):
  cfg = make_tiny_config(**{"data.modalities": "fou,pix", "al.rounds": 1,
                            "model.encoders": "fou=own_encoders:TinyEncoder",
                            "al.strategy": "badge"})
  summary = run(cfg, str(tmp_path / "w"))
  assert summary["num_labeled"] == [20, 30] and 0 < summary["final"]["test_top1"] <= 1
  stored = json.load(open(os.path.join(tmp_path, "w", "config.json")))
  assert stored["model"]["encoders"] == "fou=own_encoders:TinyEncoder"
  import numpy as np

  from rlmba_jax.inference import load_model
  model = load_model(str(tmp_path / "w"))
  params = model._state.train.params["encoder_fou"]  # pylint: disable=protected-access
  assert {"Dense_0", "Dense_1"} <= set(params)  # the user's module's own parameters
  assert np.asarray(params["Dense_1"]["kernel"]).shape == (24, cfg.model.width)
  x = {m: np.zeros((3,) + model.specs[m].shape, np.float32) for m in model.modality_names}
  assert np.asarray(model.predict(x)["probs"]).shape == (3, 10)


@pytest.mark.parametrize("encoders,words", [
    ("fou=own_encoders:NoSuchEncoder", "cannot be imported .*AttributeError"),
    ("fou=no_such_package.enc:Encoder", "cannot be imported .*ModuleNotFoundError"),
    ("fou=own_encoders:__doc__", "not a Flax module class"),
    ("fou=transformer", "unknown encoder"),
])
def test_an_encoder_that_cannot_be_used_is_named_before_any_work(tmp_path, encoders, words):
  with pytest.raises(ConfigError, match=words):
    run(make_tiny_config(**{"model.encoders": encoders}), str(tmp_path / "w"))
  assert not (tmp_path / "w").exists()


def test_an_encoder_returning_maps_instead_of_features_is_named(tmp_path):
  cfg = make_tiny_config(**{"data.modalities": "fou,pix", "al.rounds": 1,
                            "model.encoders": "pix=own_encoders:ImageMaps"})
  with pytest.raises(ConfigError, match=r"'own_encoders:ImageMaps' of modality 'pix' returned "
                     r"\(.*, 16, 15, 32\).*must return float features \[batch, width\]"):
    run(cfg, str(tmp_path / "w"))
  assert not (tmp_path / "w").exists()
