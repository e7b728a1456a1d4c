"""Flax modules: per-modality encoders, heads and the multimodal classifier."""

from rlmba_jax.models.classifier import (MultimodalClassifier, build_model, fuse_with_weights,
                                         make_fused_head)
from rlmba_jax.models.encoders import ConvEncoder, MLPEncoder, PatchConv, max_pool_2x2
