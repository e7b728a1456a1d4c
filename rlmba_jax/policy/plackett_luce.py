r"""Plackett–Luce distributions over orderings of K candidates, drawn with Gumbel-top-k.

Drawing b of K items one at a time without replacement, each with probability proportional
to ``exp(logit)`` among those left, gives the ordered draw ``o`` the probability

    log p(o) = sum_t [ l_{o_t} - log sum_{j not in o_{<t}} exp(l_j) ]

and the same distribution as the b largest of ``l + Gumbel noise``, in decreasing order
(Yellott 1977; Kool et al. 2019), which is one ``top_k`` instead of b sequential draws.
Invalid candidates (``valid = False``) are never drawn.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp


def _masked(logits: jnp.ndarray, valid: jnp.ndarray | None) -> jnp.ndarray:
  chex.assert_rank(logits, 1)
  if valid is None:
    return logits
  chex.assert_equal_shape((logits, valid))
  return jnp.where(valid, logits, -jnp.inf)


def gumbel_top_k(key: jax.Array, logits: jnp.ndarray, k: int,
                 valid: jnp.ndarray | None = None) -> jnp.ndarray:
  """An ordered Plackett–Luce draw of ``k`` of the ``[K]`` candidates. -> ``[k]`` int32.

  The caller guarantees at least ``k`` valid candidates.
  """
  perturbed = _masked(logits, valid) + jax.random.gumbel(key, logits.shape, logits.dtype)
  return jax.lax.top_k(perturbed, k)[1].astype(jnp.int32)


def sequential_plackett_luce(key: jax.Array, logits: jnp.ndarray, k: int,
                             valid: jnp.ndarray | None = None) -> jnp.ndarray:
  """The same distribution drawn the slow way, one categorical draw per position."""
  masked = _masked(logits, valid)

  def step(remaining, t):
    i = jax.random.categorical(jax.random.fold_in(key, t), jnp.where(remaining, masked,
                                                                      -jnp.inf))
    return remaining.at[i].set(False), i

  _, order = jax.lax.scan(step, jnp.isfinite(masked), jnp.arange(k))
  return order.astype(jnp.int32)


def plackett_luce_log_prob(logits: jnp.ndarray, order: jnp.ndarray,
                           valid: jnp.ndarray | None = None,
                           length: jnp.ndarray | None = None) -> jnp.ndarray:
  """Exact log-probability of the ordered draw ``order`` (``[b]`` distinct valid indices).

  ``length`` (a traced int, at most b): the probability of the first ``length`` draws only,
  for draws of a per-episode size padded to a static b.
  """
  chex.assert_rank(order, 1)
  masked = _masked(logits, valid)

  def step(remaining, i):
    log_norm = jax.nn.logsumexp(jnp.where(remaining, masked, -jnp.inf))
    return remaining.at[i].set(False), masked[i] - log_norm

  _, terms = jax.lax.scan(step, jnp.isfinite(masked), order)
  if length is not None:
    terms = jnp.where(jnp.arange(order.shape[0]) < length, terms, 0.0)
  return jnp.sum(terms)


def first_draw_entropy(logits: jnp.ndarray, valid: jnp.ndarray | None = None) -> jnp.ndarray:
  """Entropy of the first draw, softmax over the valid candidates (the entropy bonus)."""
  masked = _masked(logits, valid)
  log_p = jax.nn.log_softmax(masked)
  p = jnp.exp(log_p)
  return -jnp.sum(jnp.where(p > 0, p * jnp.where(p > 0, log_p, 0.0), 0.0))
