"""The selection policy: a small MLP that scores each candidate in the context of the round."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp


class CandidatePolicy(nn.Module):
  """``(candidate_features [K, F], round_state [S]) -> logits [K]``.

  ``logits = q / prior_temperature + MLP([features || state])``: the last layer starts at
  zero, so an untrained policy is a Plackett–Luce softening of the heuristic score ``q``
  (feature 0) and learning adds corrections to it.
  """
  hidden: Sequence[int] = (64, 64)
  prior_temperature: float = 0.1

  @nn.compact
  def __call__(self, candidate_features: jnp.ndarray, round_state: jnp.ndarray
               ) -> jnp.ndarray:
    k = candidate_features.shape[0]
    x = jnp.concatenate([candidate_features,
                         jnp.broadcast_to(round_state, (k,) + round_state.shape)], -1)
    for width in self.hidden:
      x = nn.tanh(nn.Dense(width)(x))
    correction = nn.Dense(1, kernel_init=nn.initializers.zeros)(x)[:, 0]
    return candidate_features[:, 0] / self.prior_temperature + correction
