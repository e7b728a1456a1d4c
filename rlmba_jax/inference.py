"""A round's trained classifier, loaded from a workdir, for predictions on new inputs.

  model = load_model("runs/mine")             # the latest round (round=r for another)
  out = model.predict({"fou": x_fou, "kar": x_kar})
  out["predicted"], out["confidence"], out["modality_predicted"]["fou"], out["uncertainty"]

Inputs are raw, as in the data set's files: they are standardised with the statistics the
run used (the pool's). For an in-memory data set (``arrays``, ``uci_mfeat``, ``av_digits``).
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from rlmba_jax import parallel
from rlmba_jax.data import load_dataset
from rlmba_jax.data.loading import apply_standardization, standardization_stats
from rlmba_jax.data.specs import MultimodalArrays
from rlmba_jax.errors import WorkdirError
from rlmba_jax.experiment.checkpoint import RoundCheckpointer
from rlmba_jax.experiment.config import config_from_stored
from rlmba_jax.experiment.round_env import RoundState, initial_state, make_env
from rlmba_jax.experiment.start import make_trainer
from rlmba_jax.models import build_model
from rlmba_jax.selection import efda_difficulty
from rlmba_jax.selection.uncertainty import predictive_entropy


def stored_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a workdir's run was started with (``config.json`` over the defaults)."""
  path = os.path.join(workdir, "config.json")
  try:
    with open(path, encoding="utf-8") as f:
      stored = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise WorkdirError(f"{path} cannot be read ({e}); is {workdir!r} a run's workdir?") from e
  return config_from_stored(stored)


class TrainedModel:
  """One round's classifier with the run's standardisation and class names.

  Attributes: ``config``, ``round``, ``class_names``, ``modality_names``, ``num_labeled``.
  """

  def __init__(self, config, round_index: int, data, env, state: RoundState, stats):
    self.config, self.round = config, round_index
    self.class_names = tuple(data.class_names)
    self.modality_names = tuple(data.modality_names)
    self.specs = {s.name: s for s in data.modalities}
    self.num_labeled = int(jnp.sum(state.labelled))
    self._env, self._state, self._stats = env, state, stats

  def predict(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Predictions for ``inputs`` (modality -> ``[B, *shape]`` raw arrays, every modality
    the model was trained on).

    Returns a dict of NumPy arrays: ``probs [B, C]`` (fused), ``predicted`` (class names),
    ``confidence [B]``, ``modality_probs`` / ``modality_predicted`` per modality, and
    ``uncertainty [B]``: with evidential heads the Dirichlet variance of the weighted
    evidence fusion (EFDA's difficulty) and per modality the vacuity C / S
    (``modality_uncertainty``); otherwise the entropy of the fused prediction.
    """
    missing = [m for m in self.modality_names if m not in inputs]
    if missing:
      raise ValueError(f"inputs lack modalities {missing}; the model reads "
                       f"{list(self.modality_names)}")
    arrays = {}
    for m in self.modality_names:
      x = np.asarray(inputs[m], np.float32)
      spec = self.specs[m]
      if spec.kind == "image" and x.ndim == len(spec.shape):  # [B, H, W] for one channel
        x = x[..., None]
      if x.shape[1:] != spec.shape:
        raise ValueError(f"modality {m!r}: inputs of shape {x.shape[1:]} per example, the "
                         f"model reads {spec.shape}")
      if not np.isfinite(x).all():
        raise ValueError(f"modality {m!r}: the inputs hold NaN or infinite values")
      arrays[m] = x
    sizes = {len(x) for x in arrays.values()}
    if len(sizes) != 1:
      raise ValueError(f"the modalities have different numbers of rows: "
                       f"{ {m: len(x) for m, x in arrays.items()} }")
    if self._stats is not None:
      arrays = apply_standardization(arrays, self._stats)
    n = sizes.pop()
    batch = MultimodalArrays(arrays, np.zeros(n, np.int32), np.arange(n, dtype=np.int64))
    train, weights = self._state.train, self._state.modality_weights.weights
    out = jax.device_get(self._env.trainer.predict(train.params, self._env.trainer.put(batch),
                                                   weights, train.model_state))
    probs = np.asarray(out["fused_probs"])
    names = np.asarray(self.class_names)
    result = {"probs": probs, "predicted": names[probs.argmax(-1)],
              "confidence": probs.max(-1),
              "modality_probs": {m: np.asarray(out["probs"][m]) for m in self.modality_names}}
    result["modality_predicted"] = {m: names[p.argmax(-1)]
                                    for m, p in result["modality_probs"].items()}
    if "alpha" in out:
      alphas = {m: jnp.asarray(out["alpha"][m]) for m in self.modality_names}
      result["uncertainty"] = np.asarray(efda_difficulty(alphas, self.modality_names,
                                                         jnp.asarray(weights)))
      result["modality_uncertainty"] = {
          m: np.asarray(a.shape[-1] / jnp.sum(a, axis=-1)) for m, a in alphas.items()}
    else:
      result["uncertainty"] = np.asarray(predictive_entropy(jnp.asarray(probs)))
    return result


def load_model(workdir: str, round: int | None = None) -> TrainedModel:  # pylint: disable=redefined-builtin
  """The classifier of round ``round`` (default: the latest checkpointed) of a workdir."""
  config = stored_config(workdir)
  folder = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(folder):
    raise WorkdirError(f"{workdir} holds no checkpoints/: no round has finished yet")
  data = load_dataset(config.data)
  if data.streamed:
    raise WorkdirError(f"load_model reads in-memory data sets; {data.name} streams records")
  stats = None
  if config.data.standardize:
    raw_cfg = ml_collections.ConfigDict(config.data.to_dict())
    raw_cfg.standardize = False
    raw = load_dataset(raw_cfg)
    stats = standardization_stats(raw.pool, raw.modalities)
  mesh = parallel.make_mesh(config.num_devices)
  model = build_model(config.model, data.modalities, data.num_classes)
  trainer = make_trainer(config, model, data, mesh)
  pool = trainer.put(data.pool)
  env = make_env(_without_references(config), model, trainer,
                 data.modality_names, data.num_classes, len(data.pool), pool, None, {})
  checkpointer = RoundCheckpointer(folder, config.checkpoint.max_to_keep)
  try:
    kept = checkpointer.rounds()
    if not kept:
      raise WorkdirError(f"{folder} holds no checkpoint yet")
    r = kept[-1] if round is None else round
    if r not in kept:
      raise WorkdirError(f"round {r} is not kept in {folder}; kept rounds: {kept} "
                         "(config.checkpoint.max_to_keep)")
    tree, _ = checkpointer.restore(r, initial_state(env, mesh).checkpoint())
  finally:
    checkpointer.close()
  return TrainedModel(config, r, data, env, RoundState.from_checkpoint(tree), stats)


def _without_references(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The config with RL-MBA's reward references unread (predicting needs no reward)."""
  config = ml_collections.ConfigDict(config.to_dict())
  if config.al.strategy == "rlmba" and config.al.rlmba.reward == "relative":
    config.al.rlmba.reward = "incremental"
  return config
