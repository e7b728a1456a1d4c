"""DeepFool active learning (DFAL, Ducoffe & Precup 2018) on the fused head.

An example's score is the squared norm of the smallest perturbation of its fused features
that changes the fused head's predicted class, found with DeepFool's iterative linearisation
(Moosavi-Dezfooli et al., CVPR 2016) over the ``candidate_classes`` most likely other classes.
Examples closest to the decision boundary are labelled first.
"""

from __future__ import annotations

from typing import Any, Callable

import chex
import jax
import jax.numpy as jnp

from rlmba_jax.selection.base import PoolView, check_view, register, top_scores


def deepfool_perturbation(head: Callable[[jnp.ndarray], jnp.ndarray], features: jnp.ndarray,
                          *, candidate_classes: int = 10, max_iterations: int = 50,
                          overshoot: float = 0.02) -> jnp.ndarray:
  """Squared norm of DeepFool's minimal label-changing perturbation of each row.

  Args:
    head: ``[B, D] -> [B, C]`` logits (any differentiable function of the features).
    features: ``[N, D]`` rows to perturb.
    candidate_classes: how many of the most likely other classes are tried each step.
    max_iterations: linearisation steps; a row whose label has not flipped by then keeps
      the perturbation reached so far.
    overshoot: the perturbation is scaled by ``1 + overshoot`` (DeepFool's default 0.02).

  Returns:
    ``[N]`` squared norms ``||(1 + overshoot) r||^2``.
  """
  chex.assert_rank(features, 2)
  if max_iterations < 1:
    raise ValueError(f"max_iterations={max_iterations} must be at least 1")

  def one(z0):
    f = lambda z: head(z[None])[0]
    logits0 = f(z0)
    k = min(candidate_classes + 1, logits0.shape[0])
    classes = jax.lax.top_k(logits0, k)[1]  # classes[0] is the predicted label
    label = classes[0]
    cotangents = jax.nn.one_hot(classes, logits0.shape[0], dtype=z0.dtype)

    def body(state):
      it, r_total, _ = state
      logits, vjp = jax.vjp(f, z0 + (1.0 + overshoot) * r_total)
      grads = jax.vmap(lambda e: vjp(e)[0])(cotangents)  # [k, D]
      w = grads[1:] - grads[0]
      gap = jnp.abs(logits[classes[1:]] - logits[label])
      w_norm = jnp.linalg.norm(w, axis=-1) + 1e-12
      i = jnp.argmin(gap / w_norm)
      r_total = r_total + (gap[i] + 1e-4) / w_norm[i] ** 2 * w[i]
      flipped = jnp.argmax(f(z0 + (1.0 + overshoot) * r_total)) != label
      return it + 1, r_total, flipped

    def cond(state):
      it, _, flipped = state
      return (it < max_iterations) & ~flipped

    _, r_total, _ = jax.lax.while_loop(cond, body, (0, jnp.zeros_like(z0), False))
    return jnp.sum(((1.0 + overshoot) * r_total) ** 2)

  return jax.vmap(one)(features)


@register("deepfool", needs=("fused_head",), reads=("features",))
def deepfool_sampling(key: jax.Array, pool: PoolView, budget: int, candidate_classes: int = 10,
                      max_iterations: int = 50, overshoot: float = 0.02) -> jnp.ndarray:
  """The ``budget`` unlabelled examples nearest the fused head's decision boundary."""
  del key
  check_view(pool, ("fused_head", "head_params"), "deepfool")
  head_params: Any = pool.head_params
  distance = deepfool_perturbation(
      lambda z: pool.fused_head(head_params, z), pool.fused_features(),
      candidate_classes=candidate_classes, max_iterations=max_iterations, overshoot=overshoot)
  return top_scores(-distance, ~pool.labelled, budget)
