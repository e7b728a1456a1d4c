"""Encoders written as a user would (tests/test_own_encoder.py names them by import path)."""

import flax.linen as nn


class TinyEncoder(nn.Module):
  """A user's encoder: any Flax module with a ``width`` field, ``(x, train) -> [B, width]``."""
  width: int

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = x.reshape(x.shape[0], -1)
    x = nn.relu(nn.Dense(24)(x))
    x = nn.Dropout(0.1, deterministic=not train)(x)
    return nn.Dense(self.width)(x)


class ImageMaps(nn.Module):
  """Forgets to pool: returns ``[B, H, W, C]`` maps instead of features."""
  width: int

  @nn.compact
  def __call__(self, x, train: bool = False):
    return nn.Conv(self.width, (3, 3))(x)
