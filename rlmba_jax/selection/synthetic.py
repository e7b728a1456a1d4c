"""A synthetic pool view of any size, for timing, scaling and sharding checks of strategies.

Two modalities ``a`` and ``b`` with ``D/2`` non-negative features each (as after a ReLU), a
random linear fused head over their concatenation, evidential heads for both and their
weighted evidence fusion (uniform weights). Only the optional fields a strategy ``needs``
are filled in, so a pool of a million rows holds what a real round would hold and nothing
more.
"""

from __future__ import annotations

from typing import Iterable

import jax
import jax.numpy as jnp
import numpy as np

from jax.sharding import NamedSharding, PartitionSpec as P

from rlmba_jax import parallel
from rlmba_jax.fusion import uniform_weights, weighted_evidence_fusion
from rlmba_jax.selection.base import NEEDS, PoolView

MODALITIES = ("a", "b")


def _linear_head(params, h):
  return h @ params["w"] + params["b"]


def synthetic_pool(num_rows: int, features: int, num_classes: int, num_labelled: int, *,
                   needs: Iterable[str] = NEEDS, passes: int = 10, seed: int = 0
                   ) -> PoolView:
  """A ``PoolView`` of ``num_rows`` examples; ``num_labelled`` of them (seeded) are labelled.

  Args:
    num_rows: pool size N.
    features: fused feature width D (modality ``a`` gets ``D // 2``, ``b`` the rest).
    num_classes: C.
    num_labelled: size of the labelled set.
    needs: optional fields to fill in (``selection.strategy_needs(name)``; default all).
    passes: T of ``mc_probs``.
    seed: everything is drawn from ``jax.random.key(seed)``.
  """
  if not 0 <= num_labelled < num_rows:
    raise ValueError(f"num_labelled={num_labelled} must be in [0, num_rows={num_rows})")
  needs = frozenset(needs)
  keys = jax.random.split(jax.random.key(seed), 6)
  half = features // 2
  feats = {"a": jax.nn.relu(jax.random.normal(keys[0], (num_rows, half))),
           "b": jax.nn.relu(jax.random.normal(keys[1], (num_rows, features - half)))}
  head = {"w": jax.random.normal(keys[2], (features, num_classes)) / np.sqrt(features),
          "b": jnp.zeros(num_classes)}
  logits = _linear_head(head, jnp.concatenate([feats["a"], feats["b"]], -1))
  mask = np.zeros(num_rows, bool)
  mask[np.random.default_rng(seed).permutation(num_rows)[:num_labelled]] = True
  alphas = {m: 1.0 + jax.nn.softplus(logits + jax.random.normal(keys[4 + i], logits.shape))
            for i, m in enumerate(MODALITIES)}
  extra = {}
  if "mc_probs" in needs:
    noise = jax.random.normal(keys[3], (passes,) + logits.shape) * 0.5
    extra["mc_probs"] = jax.nn.softmax(logits[None] + noise)
  if "coalition_probs" in needs:  # coalitions {}, {a}, {b}, {a, b}
    extra["coalition_probs"] = jax.nn.softmax(
        jnp.stack([logits * s for s in (0.0, 0.6, 0.4, 1.0)]))
  if "fused_head" in needs:
    extra.update(head_params=head, fused_head=_linear_head)
  weights = uniform_weights(len(MODALITIES))
  if "evidential" in needs:
    extra.update(modality_alphas=alphas, fused_alpha=weighted_evidence_fusion(
        jnp.stack([alphas[m] for m in MODALITIES]), weights))
  if "modality_weights" in needs:
    extra["modality_weights"] = weights
  return PoolView(jax.nn.softmax(logits),
                  {m: a / a.sum(-1, keepdims=True) for m, a in alphas.items()},
                  feats, jnp.asarray(mask), modality_names=MODALITIES, **extra)


def shard_pool(view: PoolView, mesh) -> PoolView:
  """``view`` with its pool axis split over ``mesh``'s data axis: axis 0 of the ``[N, ...]``
  arrays, axis 1 of ``mc_probs`` / ``coalition_probs``; everything else replicated. N must
  be a multiple of the mesh size."""
  n = view.labelled.shape[0]
  if n % mesh.devices.size:
    raise ValueError(f"a pool of {n} rows does not split evenly over {mesh.devices.size} "
                     "devices")

  def place(path, x):
    if not isinstance(x, jax.Array):
      return x
    names = [getattr(p, "name", getattr(p, "key", None)) for p in path]
    axis = 1 if names[0] in ("mc_probs", "coalition_probs") else 0
    if "head_params" in names or x.ndim <= axis or x.shape[axis] != n:
      return jax.device_put(x, parallel.replicated(mesh))
    spec = [None] * x.ndim
    spec[axis] = parallel.DATA_AXIS
    return jax.device_put(x, NamedSharding(mesh, P(*spec)))

  return jax.tree_util.tree_map_with_path(place, view)
