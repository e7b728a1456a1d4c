"""AMCB modality weights as an ``(init, update)`` pair with NamedTuple state.

``w = eps + (1 - M eps) * softmax(Delta / tau)``: the softmax of the (optionally
EMA-smoothed) contributions ``Delta`` at temperature ``tau``, mixed with a floor so every
modality keeps at least ``eps`` (and the weights still sum to 1).
"""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

# What AMCB's Delta_m measures: the top-1 gap top1(head_m) - top1(fused head), or the mean
# Shapley value; and which modalities gain weight: "stronger" (softmax(+Delta / tau), the
# paper's) or "weaker" (softmax(-Delta / tau)).
from rlmba_jax.config_choices import CONTRIBUTIONS, FAVOUR
from rlmba_jax.fusion import uniform_weights


class ModalityWeightState(NamedTuple):
  """``weights [M]`` (sum 1), ``contributions [M]`` (smoothed Delta), ``count`` updates."""
  weights: jnp.ndarray
  contributions: jnp.ndarray
  count: jnp.ndarray


def amcb_init(num_modalities: int) -> ModalityWeightState:
  """Uniform weights before any contribution is measured."""
  return ModalityWeightState(
      weights=uniform_weights(num_modalities),
      contributions=jnp.zeros((num_modalities,), jnp.float32),
      count=jnp.zeros((), jnp.int32))


def amcb_weights(contributions: jnp.ndarray, temperature: float, floor: float) -> jnp.ndarray:
  """``eps + (1 - M eps) softmax(Delta / tau)``. ``[M] -> [M]``."""
  chex.assert_rank(contributions, 1)
  m = contributions.shape[0]
  if not 0.0 <= floor * m < 1.0:
    raise ValueError(f"modality weight floor {floor} times {m} modalities must be below 1")
  if temperature <= 0:
    raise ValueError(f"modality weight temperature must be positive, got {temperature}")
  return floor + (1.0 - m * floor) * jax.nn.softmax(contributions / temperature)


def amcb_update(state: ModalityWeightState, contributions: jnp.ndarray, *,
                temperature: float = 0.1, floor: float = 0.02, momentum: float = 0.0,
                favour: str = "stronger") -> ModalityWeightState:
  """Folds one round's contributions ``Delta [M]`` into the state.

  ``favour="weaker"`` negates them first (weight to the lagging modalities). ``momentum``
  in ``[0, 1)`` smooths the contributions over rounds (0 = use this round's); the first
  update takes the contributions as they are.
  """
  chex.assert_equal_shape((state.contributions, contributions))
  if favour not in FAVOUR:
    raise ValueError(f"favour={favour!r}; choose from {FAVOUR}")
  if favour == "weaker":
    contributions = -contributions
  smoothed = jnp.where(state.count > 0,
                       momentum * state.contributions + (1.0 - momentum) * contributions,
                       contributions)
  return ModalityWeightState(amcb_weights(smoothed, temperature, floor), smoothed,
                             state.count + 1)
