"""The interface every acquisition strategy shares, and the registry that names them.

A strategy is a pure function ``select(key, pool, budget) -> [budget] int32`` positions in the
pool. ``pool`` is a ``PoolView``: the current model's outputs on every pool example plus the
labelled mask. Shapes are fixed (the whole pool, masked), so a jitted strategy compiles once
per run; ``budget`` is static.
"""

from __future__ import annotations

from typing import Callable, Mapping, NamedTuple

import chex
import jax
import jax.numpy as jnp


class PoolView(NamedTuple):
  """What a strategy may look at. N pool size, C classes, D feature width.

  Attributes:
    probs: ``[N, C]`` fused predictive probabilities.
    modality_probs: modality -> ``[N, C]`` unimodal probabilities.
    features: modality -> ``[N, D_m]`` encoder features.
    labelled: ``[N]`` bool, true where the label is already bought.
  """
  probs: jnp.ndarray
  modality_probs: Mapping[str, jnp.ndarray]
  features: Mapping[str, jnp.ndarray]
  labelled: jnp.ndarray


Strategy = Callable[[jax.Array, PoolView, int], jnp.ndarray]
_REGISTRY: dict[str, Strategy] = {}


def register(name: str) -> Callable[[Strategy], Strategy]:
  """Decorator adding a strategy to the registry under ``name``."""
  def wrap(fn: Strategy) -> Strategy:
    if name in _REGISTRY:
      raise ValueError(f"strategy {name!r} is registered twice")
    _REGISTRY[name] = fn
    return fn
  return wrap


def available_strategies() -> tuple[str, ...]:
  return tuple(sorted(_REGISTRY))


def get_strategy(name: str) -> Strategy:
  if name not in _REGISTRY:
    raise ValueError(f"unknown strategy {name!r}; available: {', '.join(available_strategies())}")
  return _REGISTRY[name]


def top_scores(scores: jnp.ndarray, available: jnp.ndarray, budget: int) -> jnp.ndarray:
  """Positions of the ``budget`` highest ``scores`` among ``available`` (``[N]`` each).

  Ties go to the lower position. The caller guarantees ``budget <= available.sum()``.
  """
  chex.assert_equal_shape((scores, available))
  masked = jnp.where(available, scores, -jnp.inf)
  return jax.lax.top_k(masked, budget)[1].astype(jnp.int32)
