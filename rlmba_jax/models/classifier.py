"""The multimodal classifier: one encoder and one head per modality, and a fused head."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from rlmba_jax.data.specs import ModalitySpec
from rlmba_jax.models.encoders import ConvEncoder, MLPEncoder


class MultimodalClassifier(nn.Module):
  """Encoders per modality, unimodal heads and a fused head over the concatenated features.

  ``__call__(inputs, train)`` takes ``inputs``: modality -> ``[B, *shape]`` and returns a
  dict with ``features`` (modality -> ``[B, width]``), ``logits`` (modality -> ``[B, C]``)
  and ``fused_logits`` ``[B, C]``.
  """
  modalities: tuple[ModalitySpec, ...]
  num_classes: int
  width: int = 128
  hidden: Sequence[int] = (256,)
  conv_channels: Sequence[int] = (32, 64)
  dropout: float = 0.0

  @nn.compact
  def __call__(self, inputs, *, train: bool = False):
    missing = [s.name for s in self.modalities if s.name not in inputs]
    if missing:
      raise KeyError(f"the batch has no input for modality {missing}; it has "
                     f"{sorted(inputs)}")
    features, logits = {}, {}
    for spec in self.modalities:
      if spec.kind == "image":
        encoder = ConvEncoder(self.conv_channels, self.width, self.dropout,
                              name=f"encoder_{spec.name}")
      else:
        encoder = MLPEncoder(self.hidden, self.width, self.dropout,
                             name=f"encoder_{spec.name}")
      features[spec.name] = encoder(inputs[spec.name], train=train)
      logits[spec.name] = nn.Dense(self.num_classes, name=f"head_{spec.name}")(
          features[spec.name])
    joint = jnp.concatenate([features[s.name] for s in self.modalities], axis=-1)
    fused = nn.Dense(self.num_classes, name="fused_head")(joint)
    return {"features": features, "logits": logits, "fused_logits": fused}


def build_model(model_cfg, modalities: tuple[ModalitySpec, ...], num_classes: int
                ) -> MultimodalClassifier:
  return MultimodalClassifier(
      modalities=tuple(modalities), num_classes=num_classes, width=model_cfg.width,
      hidden=tuple(model_cfg.hidden), conv_channels=tuple(model_cfg.conv_channels),
      dropout=model_cfg.dropout)
