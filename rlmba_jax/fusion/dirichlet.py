"""Dirichlet / subjective-logic statistics of evidential classifiers.

Shapes: ``[..., C]`` over the last (class) axis, so every function works on one example
(``[C]``) or a batch. An evidential head outputs non-negative evidence ``e``; its Dirichlet
is ``alpha = e + 1`` (Sensoy et al., 2018), with strength ``S = sum_c alpha_c``, belief
masses ``b = e / S`` and uncertainty mass ``u = C / S`` (``sum_c b_c + u = 1``).

Every function is written so that finite evidence up to ``MAX_EVIDENCE`` (and exact zero)
gives finite values and finite gradients: strengths are never squared and ratios are taken
before anything can overflow.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rlmba_jax.config_choices import EVIDENCE_ACTIVATIONS


# Activations clip evidence here; S = C * 1e30 stays finite in float32 for C < 1e8.
MAX_EVIDENCE = 1e30


def evidence_from_logits(logits: jnp.ndarray, activation: str = "softplus") -> jnp.ndarray:
  """Non-negative evidence from a head's raw outputs. ``[..., C] -> [..., C]``.

  ``softplus`` (TMC's choice), ``relu`` or ``exp`` (logits clipped at 60 first so exp stays
  finite); the result is clipped to ``[0, MAX_EVIDENCE]``.
  """
  if activation == "softplus":
    e = jax.nn.softplus(logits)
  elif activation == "relu":
    e = jax.nn.relu(logits)
  elif activation == "exp":
    e = jnp.exp(jnp.clip(logits, -60.0, 60.0))
  else:
    raise ValueError(f"unknown evidence activation {activation!r}; use "
                     f"{', '.join(EVIDENCE_ACTIVATIONS[:-1])} or {EVIDENCE_ACTIVATIONS[-1]}")
  return jnp.clip(e, 0.0, MAX_EVIDENCE)


def alpha_from_evidence(evidence: jnp.ndarray) -> jnp.ndarray:
  """``alpha = e + 1``."""
  return evidence + 1.0


def dirichlet_strength(alpha: jnp.ndarray) -> jnp.ndarray:
  """``S = sum_c alpha_c``. ``[..., C] -> [...]``."""
  if alpha.ndim < 1:
    raise ValueError(f"alpha must have a class axis, got shape {alpha.shape}")
  return jnp.sum(alpha, axis=-1)


def expected_probabilities(alpha: jnp.ndarray) -> jnp.ndarray:
  """Mean of the Dirichlet, ``alpha / S``. ``[..., C] -> [..., C]``."""
  return alpha / dirichlet_strength(alpha)[..., None]


def belief_and_uncertainty(alpha: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Subjective-logic opinion: ``b = (alpha - 1) / S`` ``[..., C]`` and ``u = C / S`` ``[...]``."""
  strength = dirichlet_strength(alpha)
  num_classes = alpha.shape[-1]
  return (alpha - 1.0) / strength[..., None], num_classes / strength


def dirichlet_variance(alpha: jnp.ndarray) -> jnp.ndarray:
  """Per-class variance ``alpha_c (S - alpha_c) / (S^2 (S + 1))``. ``[..., C] -> [..., C]``.

  Computed as ``p_c q_c / (S + 1)`` with ``p = alpha / S`` and ``q_c = (S - alpha_c) / S``,
  the other classes' mass summed directly (prefix and suffix sums), not as ``1 - p_c``: on a
  confident example ``1 - p_c`` cancels in float32 (3.6 % error at alpha = [1e6 + 1, 1]).
  """
  strength = dirichlet_strength(alpha)[..., None]
  zero = jnp.zeros_like(alpha[..., :1])
  before = jnp.concatenate([zero, jnp.cumsum(alpha[..., :-1], axis=-1)], axis=-1)
  after = jnp.concatenate([jnp.flip(jnp.cumsum(jnp.flip(alpha[..., 1:], -1), axis=-1), -1),
                           zero], axis=-1)
  others = before + after  # sum over k != c, without subtracting alpha_c
  return (alpha / strength) * (others / strength) / (strength + 1.0)


def mean_dirichlet_variance(alpha: jnp.ndarray) -> jnp.ndarray:
  """RL-MBA's difficulty ``U(x)``: the class mean of the Dirichlet variance. ``[..., C] -> [...]``."""
  return jnp.mean(dirichlet_variance(alpha), axis=-1)


def xlogx(p: jnp.ndarray) -> jnp.ndarray:
  """``p log p`` elementwise with ``0 log 0 = 0`` and a finite gradient at 0 (unlike
  ``jax.scipy.special.entr``); the one place the entropies of the library take it."""
  return jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0)
