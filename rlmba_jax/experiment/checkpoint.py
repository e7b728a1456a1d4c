"""Round checkpoints with Orbax (the only module that touches Orbax).

A checkpoint ``r`` holds the array state after round ``r`` (parameters, optimiser state, the
labelled mask, and later the policy and modality-weight states) plus a JSON part (the
metric history). Orbax writes into a temporary folder and renames it when complete, so a
process killed mid-save leaves the previous checkpoint as the latest. The JSON part also
holds a sha256 of every array (``state_digest``) and of the JSON part itself
(``meta_digest``: the history the resume rewrites rounds.jsonl and the summary from), both
checked on restore: a checkpoint whose bytes changed after it was written (bit rot, an
edit) is refused, naming the round; one without both digests is refused too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp

from rlmba_jax.errors import CheckpointError, WorkdirError
from rlmba_jax.policy import pretraining as pretraining_lib


logger = logging.getLogger(__name__)

# The manifest of a policy-pretraining workdir (``studies.policy_pretraining``).
PRETRAINING_MANIFEST = "pretrain.json"


def state_digest(state: Any) -> str:
  """sha256 over every array leaf of ``state``: its path, dtype, shape and bytes."""
  digest = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
    if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype,
                                                              jax.dtypes.prng_key):
      leaf = jax.random.key_data(leaf)
    array = np.asarray(jax.device_get(leaf))
    digest.update(f"{jax.tree_util.keystr(path)}|{array.dtype}|{array.shape}|".encode())
    digest.update(np.ascontiguousarray(array).tobytes())
  return digest.hexdigest()


def meta_digest(meta: dict) -> str:
  """sha256 of a checkpoint's JSON part (its digests left out), keys sorted."""
  body = {k: v for k, v in meta.items() if k not in ("state_digest", "meta_digest")}
  return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"),
                                   allow_nan=True).encode()).hexdigest()


class RoundCheckpointer:
  """Saves and restores the round state under ``directory``."""

  def __init__(self, directory: str, max_to_keep: int = 2):
    self.directory = os.path.abspath(directory)
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                           enable_async_checkpointing=False,
                                           cleanup_tmp_directories=True)
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_round(self) -> int | None:
    self._manager.reload()
    return self._manager.latest_step()

  def rounds(self) -> list[int]:
    """The rounds whose checkpoints are kept, in order."""
    self._manager.reload()
    return sorted(self._manager.all_steps())

  def save(self, round_index: int, state: Any, meta: dict) -> None:
    meta = dict(meta, state_digest=state_digest(state))
    meta["meta_digest"] = meta_digest(meta)
    self._manager.save(round_index, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True)
    self._manager.wait_until_finished()

  def restore(self, round_index: int, target: Any) -> tuple[Any, dict]:
    """Restores round ``round_index`` into the structure, dtypes and shardings of ``target``."""
    try:
      restored = self._manager.restore(round_index, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()))
    except Exception as e:  # Orbax raises a variety of types for damaged folders
      raise CheckpointError(
          f"checkpoint {round_index} in {self.directory} cannot be read ({type(e).__name__}: "
          f"{e}). {self._recovery(round_index)}") from e
    meta = dict(restored.meta)
    stored, stored_meta = meta.get("state_digest"), meta.get("meta_digest")
    if stored is None or stored_meta is None:
      raise CheckpointError(
          f"checkpoint {round_index} in {self.directory} has no checksum of its "
          f"{'arrays' if stored is None else 'history'} (written by an earlier version, or "
          f"edited), so it cannot be trusted. {self._recovery(round_index)}")
    if stored_meta != meta_digest(meta):
      raise CheckpointError(
          f"checkpoint {round_index} in {self.directory} fails its checksum: its history "
          f"(metadata) changed after it was written. {self._recovery(round_index)}")
    if stored != state_digest(restored.state):
      raise CheckpointError(
          f"checkpoint {round_index} in {self.directory} fails its checksum: its arrays "
          f"changed after they were written. {self._recovery(round_index)}")
    meta.pop("state_digest")
    meta.pop("meta_digest")
    return restored.state, meta

  def _recovery(self, round_index: int) -> str:
    folder = os.path.join(self.directory, str(round_index))
    return (f"Move {folder} out of checkpoints/ and run the same command: the run resumes "
            "from the previous checkpoint (or from the start) and replays the ledger's "
            "later lines, recomputing those rounds.")

  def close(self) -> None:
    self._manager.close()


def is_pretraining(path: str) -> bool:
  """Whether ``path`` is a policy-pretraining workdir (``launch/pretrain_policy.py``)."""
  return os.path.exists(os.path.join(path, PRETRAINING_MANIFEST))


def load_pretrained_params(path: str, hidden, policy_inputs: str, target_params: Any, *,
                           prior_temperature: float) -> Any:
  """The policy parameters of the latest checkpoint of a pretraining in ``path``, for a
  policy of the same size and prior temperature (its logits are q / T + the learned
  correction, so parameters learned at one T are another policy at another)."""
  with open(os.path.join(path, PRETRAINING_MANIFEST)) as f:
    manifest = json.load(f)
  problems = []
  if policy_inputs != "invariant":
    problems.append(f"config.al.rlmba.policy_inputs={policy_inputs!r}: a pretrained "
                    "policy reads the 'invariant' inputs; set al.rlmba.policy_inputs=invariant")
  if list(hidden) != list(manifest["hidden"]):
    problems.append(f"config.al.rlmba.hidden={tuple(hidden)} but the pretrained policy has "
                    f"{tuple(manifest['hidden'])}")
  stored_temperature = manifest.get("prior_temperature")
  if stored_temperature is not None and float(stored_temperature) != float(prior_temperature):
    problems.append(f"config.al.rlmba.prior_temperature={prior_temperature} but the policy "
                    f"was pretrained with {stored_temperature}")
  if problems:
    raise WorkdirError(f"config.al.rlmba.init_from={path!r}: " + "; ".join(problems))
  checkpointer = RoundCheckpointer(os.path.join(path, "checkpoints"), 2)
  try:
    latest = checkpointer.latest_round()
    if latest is None:
      raise WorkdirError(f"config.al.rlmba.init_from={path!r} holds no pretraining "
                         "checkpoint yet; run launch/pretrain_policy.py to the end first")
    optimizer = optax.adam(manifest["learning_rate"])
    target = pretraining_lib.PretrainState(target_params, optimizer.init(target_params),
                                           jnp.zeros((), jnp.int32))
    state, _ = checkpointer.restore(latest, target)
  finally:
    checkpointer.close()
  logger.info("policy initialised from the pretraining in %s (update %d, source %s)", path,
              latest, manifest["source"])
  return state.params
