"""The evidential loss of Sensoy et al. (2018) as used by TMC (Han et al., 2021, eq. 8-9)."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
from jax.scipy.special import digamma, gammaln


def kl_to_uniform_dirichlet(alpha: jnp.ndarray) -> jnp.ndarray:
  """``KL(Dir(alpha) || Dir(1))``. ``[..., C] -> [...]``.

  = lnGamma(S) - sum lnGamma(alpha_c) - lnGamma(C) + sum (alpha_c - 1)(psi(alpha_c) - psi(S)).
  """
  num_classes = alpha.shape[-1]
  strength = jnp.sum(alpha, axis=-1)
  return (gammaln(strength) - jnp.sum(gammaln(alpha), axis=-1) - gammaln(float(num_classes))
          + jnp.sum((alpha - 1.0) * (digamma(alpha) - digamma(strength)[..., None]), axis=-1))


def expected_cross_entropy(alpha: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
  """``E_{p ~ Dir(alpha)}[-log p_y] = psi(S) - psi(alpha_y)``. ``[..., C], [...] -> [...]``."""
  strength = jnp.sum(alpha, axis=-1)
  alpha_y = jnp.take_along_axis(alpha, labels[..., None], axis=-1)[..., 0]
  return digamma(strength) - digamma(alpha_y)


def annealing_coefficient(epoch: jnp.ndarray, annealing_epochs: float) -> jnp.ndarray:
  """``min(1, epoch / T)``; ``T <= 0`` means the full KL term from the start."""
  if annealing_epochs <= 0:
    return jnp.ones_like(jnp.asarray(epoch, jnp.float32))
  return jnp.minimum(1.0, jnp.asarray(epoch, jnp.float32) / annealing_epochs)


def evidential_loss(alpha: jnp.ndarray, labels: jnp.ndarray, annealing: jnp.ndarray
                    ) -> jnp.ndarray:
  """Per-example evidential loss. ``alpha [..., C]``, ``labels [...]`` -> ``[...]``.

  ``sum_c y_c (psi(S) - psi(alpha_c)) + annealing * KL(Dir(alpha~) || Dir(1))`` with
  ``alpha~ = y + (1 - y) * alpha`` (the target's evidence removed, so only misleading
  evidence is pushed towards zero).
  """
  chex.assert_equal_shape_prefix((alpha, labels), labels.ndim)
  onehot = jax.nn.one_hot(labels, alpha.shape[-1], dtype=alpha.dtype)
  alpha_tilde = onehot + (1.0 - onehot) * alpha
  return expected_cross_entropy(alpha, labels) + annealing * kl_to_uniform_dirichlet(alpha_tilde)
