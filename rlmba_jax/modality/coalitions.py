"""The fused prediction restricted to a subset of modalities (for Shapley values).

A modality is removed by zeroing its share: its block of the ``concat`` head's logits, or its
evidence in the Dirichlet fusions. For ``tmc`` a modality with zero evidence is the vacuous
opinion (``b = 0``, ``u = 1``), the identity of the Dempster-Shafer combination, so removing
it is exactly combining the others; the empty coalition predicts the uniform distribution.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import chex
import jax
import jax.numpy as jnp

from rlmba_jax import fusion as fusion_lib


def coalition_probabilities(outputs: Mapping, masks: jnp.ndarray, *, modalities: Sequence[str],
                            head: str, fusion: str, evidence_activation: str = "softplus",
                            modality_weights: jnp.ndarray | None = None) -> jnp.ndarray:
  """Fused class probabilities for every coalition. -> ``[S, B, C]``.

  Args:
    outputs: the classifier's outputs (``fused_parts``/``fused_bias`` for ``concat``,
      ``alpha`` for ``tmc``/``evidence``).
    masks: ``[S, M]`` bool, which modalities each coalition keeps (``coalition_masks``).
    modalities: the M modality names, in the order of the mask columns.
    head: the fused head's kind, ``"softmax"`` or ``"evidential"`` (``concat`` only;
      ``models.classifier.fused_head_kind`` resolves it from the model config).
    fusion, evidence_activation: as in the model config.
    modality_weights: ``[M]`` for ``evidence`` fusion (uniform if None).
  """
  masks = jnp.asarray(masks, jnp.float32)
  chex.assert_rank(masks, 2)
  chex.assert_axis_dimension(masks, 1, len(modalities))
  if fusion == "concat":
    parts = jnp.stack([outputs["fused_parts"][m] for m in modalities])  # [M, B, C]
    logits = outputs["fused_bias"][None] + jnp.einsum("sm,mbc->sbc", masks, parts)
    if head == "evidential":
      return fusion_lib.expected_probabilities(fusion_lib.alpha_from_evidence(
          fusion_lib.evidence_from_logits(logits, evidence_activation)))
    return jax.nn.softmax(logits, axis=-1)
  alphas = jnp.stack([outputs["alpha"][m] for m in modalities])  # [M, B, C]
  if fusion == "tmc":
    def one(mask):
      kept = 1.0 + mask[:, None, None] * (alphas - 1.0)
      return fusion_lib.expected_probabilities(fusion_lib.tmc_fusion(kept))
    return jax.vmap(one)(masks)
  if fusion == "evidence":
    w = (fusion_lib.uniform_weights(len(modalities)) if modality_weights is None
         else modality_weights)
    return jax.vmap(lambda mask: fusion_lib.expected_probabilities(
        fusion_lib.weighted_evidence_fusion(alphas, w * mask)))(masks)
  raise ValueError(f"unknown fusion {fusion!r}")


def true_class_values(coalition_probs: jnp.ndarray, labels: jnp.ndarray) -> jnp.ndarray:
  """Per-sample coalition value: the probability of the true class. ``[S, B, C] -> [S, B]``."""
  return jnp.take_along_axis(coalition_probs, labels[None, :, None], axis=-1)[..., 0]
