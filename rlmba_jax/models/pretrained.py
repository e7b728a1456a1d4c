"""Loads pretrained PyTorch weights (safetensors, Hugging Face / torchvision names) into Flax.

One rule maps a PyTorch state-dict key to a Flax path: split on ``.``, and join every numeric
segment to the segment before it (``encoder.layer.3.attention.self.query.weight`` ->
``encoder/layer_3/attention/self/query``, ``layer1.0.conv1.0.3.weight`` ->
``layer1_0/conv1_0_3``). The encoders in ``resnet.py`` and ``bert.py`` are named so that this
rule holds. The Flax leaf decides the conversion:

* ``kernel`` <- ``weight``: linear ``[out, in]`` -> ``[in, out]``; convolution
  ``[out, in, *k]`` -> ``[*k, in, out]``;
* ``embedding`` <- ``weight`` (unchanged); ``scale`` <- ``weight`` and ``bias`` <- ``bias``
  (BatchNorm, LayerNorm);
* ``batch_stats`` ``mean`` / ``var`` <- ``running_mean`` / ``running_var``.

Loading is strict: a Flax leaf without a tensor, a tensor without a leaf (other than the
ignored heads, e.g. torchvision's ``fc`` or BERT's ``pooler``) or a shape mismatch raises an
error listing them, so a wrong file or architecture never half-loads.
"""

from __future__ import annotations

import os
import re
from typing import Any, Iterable, Mapping

import numpy as np

# Prefixes that wrap a BERT model in HF checkpoints of task models (``bert.encoder...``).
_STRIP_PREFIXES = ("bert.", "model.", "module.")
DEFAULT_IGNORE = (r"^fc\.", r"^pooler\.", r"\.num_batches_tracked$", r"^cls\.",
                  r"^embeddings\.position_ids$", r"^classifier\.")


class PretrainedWeightsError(ValueError):
  pass


def load_safetensors(path: str) -> dict[str, np.ndarray]:
  """``{name: array}`` from a ``.safetensors`` file (float16/bfloat16 become float32)."""
  if not os.path.exists(path):
    raise FileNotFoundError(f"pretrained weights {path!r} do not exist")
  try:
    from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
    tensors = load_file(path)
  except Exception as e:  # safetensors raises its own SafetensorError
    raise PretrainedWeightsError(f"cannot read {path!r} as safetensors ({e}); the file is "
                                 "damaged or not a safetensors file") from e
  out = {}
  for k, v in tensors.items():
    out[k] = v.astype(np.float32) if v.dtype.kind == "f" or v.dtype.name == "bfloat16" else v
  return out


def flax_path(torch_key: str) -> tuple[tuple[str, ...], str]:
  """``"layer1.0.conv1.weight"`` -> ``(("layer1_0", "conv1"), "weight")``."""
  segments = torch_key.split(".")
  *modules, leaf = segments
  path: list[str] = []
  for s in modules:
    if s.isdigit() and path:
      path[-1] = f"{path[-1]}_{s}"
    else:
      path.append(s)
  return tuple(path), leaf


def _flatten(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple, Any]:
  out = {}
  for k, v in tree.items():
    if isinstance(v, Mapping):
      out.update(_flatten(v, prefix + (k,)))
    else:
      out[prefix + (k,)] = v
  return out


def _set(tree: dict, path: tuple[str, ...], value) -> None:
  for k in path[:-1]:
    tree = tree[k]
  tree[path[-1]] = value


def _to_plain(tree):
  if isinstance(tree, Mapping):
    return {k: _to_plain(v) for k, v in tree.items()}
  return tree


def convert_state_dict(state: Mapping[str, np.ndarray], variables: Mapping[str, Any], *,
                       ignore: Iterable[str] = DEFAULT_IGNORE, source: str = "state dict"
                       ) -> dict[str, Any]:
  """Returns a copy of ``variables`` (``{"params": ..., "batch_stats": ...}`` of one encoder)
  with every leaf replaced by the converted tensor of ``state``.

  Raises ``PretrainedWeightsError`` naming missing tensors, unexpected tensors and shape
  mismatches.
  """
  ignore_re = [re.compile(p) for p in ignore]
  params = _flatten(variables.get("params", {}))
  stats = _flatten(variables.get("batch_stats", {}))
  new = {c: _to_plain(v) for c, v in variables.items()}
  filled, unexpected, mismatched = set(), [], []
  for raw_key, tensor in state.items():
    key = raw_key
    for prefix in _STRIP_PREFIXES:
      if key.startswith(prefix):
        key = key[len(prefix):]
    if any(p.search(key) for p in ignore_re):
      continue
    path, leaf = flax_path(key)
    leaf = {"gamma": "weight", "beta": "bias"}.get(leaf, leaf)  # old LayerNorm names
    if leaf in ("running_mean", "running_var"):
      collection, target = "batch_stats", path + ({"running_mean": "mean",
                                                   "running_var": "var"}[leaf],)
      table = stats
    elif leaf == "weight":
      collection, table = "params", params
      target = next((path + (n,) for n in ("kernel", "embedding", "scale")
                     if path + (n,) in params), path + ("kernel",))
    elif leaf == "bias":
      collection, table, target = "params", params, path + ("bias",)
    else:
      unexpected.append(raw_key)
      continue
    if target not in table:
      unexpected.append(raw_key)
      continue
    value = np.asarray(tensor)
    if target[-1] == "kernel":
      value = value.T if value.ndim == 2 else np.transpose(
          value, tuple(range(2, value.ndim)) + (1, 0))
    if value.shape != tuple(table[target].shape):
      mismatched.append(f"{raw_key}: {tuple(tensor.shape)} -> {'/'.join(target)} expects "
                        f"{tuple(table[target].shape)}")
      continue
    _set(new[collection], target, value.astype(np.asarray(table[target]).dtype))
    filled.add((collection, target))
  missing = ["/".join(p) for p in params if ("params", p) not in filled]
  missing += ["batch_stats/" + "/".join(p) for p in stats if ("batch_stats", p) not in filled]
  if missing or unexpected or mismatched:
    raise PretrainedWeightsError(_misfit_message(source, missing, unexpected, mismatched))
  return new


def _misfit_message(source: str, missing: list[str], unexpected: list[str],
                    mismatched: list[str]) -> str:
  def show(items):
    return ", ".join(items[:8]) + (f" ... ({len(items)} in all)" if len(items) > 8 else "")
  parts = []
  if mismatched:
    parts.append(f"shape mismatches: {show(mismatched)}")
  if missing:
    parts.append(f"model weights with no tensor in the file: {show(missing)}")
  if unexpected:
    parts.append(f"tensors the model has no place for: {show(unexpected)}")
  return (f"{source} does not fit this encoder ({'; '.join(parts)}). Check that the file is "
          "the architecture the config names (and its config.json for BERT).")


def load_encoder_weights(path: str, variables: Mapping[str, Any]) -> dict[str, Any]:
  """``convert_state_dict(load_safetensors(path), variables)``."""
  return convert_state_dict(load_safetensors(path), variables, source=repr(path))


def export_state_dict(variables: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """The inverse mapping: Flax variables -> PyTorch-named tensors (for saving as safetensors).

  Paths are written with numeric suffixes split back into segments; ``embedding`` and
  ``scale`` become ``weight``.
  """
  out = {}
  for collection, tree in variables.items():
    for path, value in _flatten(tree).items():
      *modules, leaf = path
      segments = []
      for m in modules:
        segments.extend(re.sub(r"_(\d+)", r".\1", m).split("."))
      value = np.asarray(value)
      if collection == "batch_stats":
        name = {"mean": "running_mean", "var": "running_var"}[leaf]
      elif leaf == "kernel":
        name = "weight"
        value = value.T if value.ndim == 2 else np.transpose(
            value, (value.ndim - 1, value.ndim - 2) + tuple(range(value.ndim - 2)))
      elif leaf in ("embedding", "scale"):
        name = "weight"
      else:
        name = leaf
      out[".".join(segments + [name])] = np.ascontiguousarray(value)
  return out
