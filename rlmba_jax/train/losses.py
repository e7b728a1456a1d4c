"""What a round's training minimises: the mean of the M + 1 heads' losses, each head's own
(cross-entropy for a softmax head, the evidential loss for a Dirichlet head), weighted per
example (padding weighs 0)."""

from __future__ import annotations

from typing import Any, Mapping
import chex
import jax.numpy as jnp
import optax
from rlmba_jax import fusion as fusion_lib
from rlmba_jax.models.classifier import fused_head_kind


def multimodal_cross_entropy(outputs: Mapping[str, Any], labels: jnp.ndarray,
                             weights: jnp.ndarray, epoch: jnp.ndarray | None = None
                             ) -> jnp.ndarray:
  """Mean of the fused and every unimodal cross-entropy (the paper's training loss).

  Args:
    outputs: the classifier's outputs (``fused_logits [B, C]``, ``logits`` m -> ``[B, C]``).
    labels: ``[B]`` int class labels.
    weights: ``[B]`` example weights (0 for padding).

  Returns:
    scalar: sum_b weights_b * (CE_fused + sum_m CE_m)_b / (M + 1) / sum_b weights_b.
  """
  del epoch
  chex.assert_shape(labels, outputs["fused_logits"].shape[:1])
  per_head = [optax.softmax_cross_entropy_with_integer_labels(outputs["fused_logits"], labels)]
  per_head += [optax.softmax_cross_entropy_with_integer_labels(l, labels)
               for l in outputs["logits"].values()]
  return _weighted_mean(sum(per_head) / len(per_head), weights)


def _weighted_mean(per_example: jnp.ndarray, weights: jnp.ndarray) -> jnp.ndarray:
  """``sum_b w_b x_b / sum_b w_b`` (0 when every weight is 0, e.g. an all-padding batch)."""
  return jnp.sum(per_example * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def make_head_losses(fused_kind: str, modality_kind: str, annealing_epochs: float):
  """Mean over the M + 1 heads of each head's own loss: cross-entropy for a softmax head,
  the evidential loss for a Dirichlet head (KL annealed by ``min(1, epoch / T)``).

  ``fused_kind="softmax", modality_kind="evidential"`` is the paper's protocol: the
  multimodal head trained as BMMAL's, the modality heads as TMC's.
  Returns ``loss(outputs, labels, weights, epoch)``.
  """
  def head_loss(kind, logits, alpha, labels, annealing):
    if kind == "evidential":
      return fusion_lib.evidential_loss(alpha, labels, annealing)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)

  def loss(outputs, labels, weights, epoch):
    chex.assert_shape(labels, outputs["fused_logits"].shape[:1])
    annealing = fusion_lib.annealing_coefficient(epoch, annealing_epochs)
    per_head = [head_loss(fused_kind, outputs["fused_logits"], outputs.get("fused_alpha"),
                          labels, annealing)]
    alphas = outputs.get("alpha", {})
    per_head += [head_loss(modality_kind, l, alphas.get(m), labels, annealing)
                 for m, l in outputs["logits"].items()]
    return _weighted_mean(sum(per_head) / len(per_head), weights)
  return loss


def make_loss(model_cfg, train_cfg):
  """The training loss for the configured heads."""
  fused = fused_head_kind(model_cfg.head, model_cfg.fusion, model_cfg.fused_head)
  if fused == model_cfg.head == "softmax":
    return multimodal_cross_entropy
  return make_head_losses(fused, model_cfg.head, train_cfg.annealing_epochs)
