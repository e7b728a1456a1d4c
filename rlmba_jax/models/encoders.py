"""Per-modality encoders: an MLP for feature vectors and a small CNN for images."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp


class MLPEncoder(nn.Module):
  """``[B, D_in] -> [B, width]``: Dense-ReLU-Dropout blocks."""
  hidden: Sequence[int]
  width: int
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
    for size in tuple(self.hidden) + (self.width,):
      x = nn.relu(nn.Dense(size)(x))
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return x


class PatchConv(nn.Module):
  """A k x k, stride-1, SAME convolution written as shifted slices + one matmul (im2col).

  ``[B, H, W, C_in] -> [B, H, W, features]``. Mathematically ``nn.Conv(features, (k, k))``;
  written this way because XLA:CPU runs convolutions inside compiled loops (our jitted
  epochs) more than 10x slower than the equivalent matmul, while GPUs run both well.
  """
  features: int
  kernel_size: int = 3

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    k = self.kernel_size
    _, h, w, _ = x.shape
    lo, hi = (k - 1) // 2, k // 2
    padded = jnp.pad(x, ((0, 0), (lo, hi), (lo, hi), (0, 0)))
    patches = jnp.concatenate(
        [padded[:, dy:dy + h, dx:dx + w, :] for dy in range(k) for dx in range(k)], axis=-1)
    return nn.Dense(self.features)(patches)


def max_pool_2x2(x: jnp.ndarray) -> jnp.ndarray:
  """2x2 max pooling with stride 2 (odd sizes padded), as reshape + max."""
  _, h, w, _ = x.shape
  x = jnp.pad(x, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), constant_values=-jnp.inf)
  b, h, w, c = x.shape
  return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


class ConvEncoder(nn.Module):
  """``[B, H, W, channels] -> [B, width]``: 3x3 conv blocks with 2x2 max pooling between
  them, global mean+max pooling, then Dense-ReLU."""
  channels: Sequence[int] = (32, 64)
  width: int = 128
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
    for i, c in enumerate(self.channels):
      x = nn.relu(PatchConv(c)(x))
      if i < len(self.channels) - 1:
        x = max_pool_2x2(x)
    x = jnp.concatenate([x.mean(axis=(1, 2)), x.max(axis=(1, 2))], axis=-1)
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    x = nn.relu(nn.Dense(self.width)(x))
    return nn.Dropout(self.dropout, deterministic=not train)(x)
