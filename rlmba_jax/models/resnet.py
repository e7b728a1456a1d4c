"""ResNets for images and spectrograms (He et al. 2016) and R(2+1)D for clips (Tran et al. 2018).

Architectures and submodule names follow torchvision's ``resnet18/101`` and
``video.r2plus1d_18`` so that ``models.pretrained`` loads their state dicts by name: a
torchvision path ``layer1.0.conv1.0.3`` is the Flax path ``layer1_0/conv1_0_3`` (numeric
segments join the segment before them). Inputs are channels-last: images ``[B, H, W, C]``,
clips ``[B, T, H, W, C]``. Every network returns the globally pooled features ``[B, D]``
(``D`` = 512 for ResNet-18 / R(2+1)D-18, 2048 for ResNet-101); the classifier adds its own
heads, so torchvision's ``fc`` is not part of them.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

# torchvision's BatchNorm: momentum 0.1 (running = 0.9 running + 0.1 batch), eps 1e-5.
_BatchNorm = functools.partial(nn.BatchNorm, momentum=0.9, epsilon=1e-5)


def _conv(features: int, kernel: Sequence[int], strides: Sequence[int], padding: int | Sequence[int],
          name: str, dtype: Any) -> nn.Conv:
  if isinstance(padding, int):
    padding = [padding] * len(kernel)
  return nn.Conv(features, tuple(kernel), strides=tuple(strides),
                 padding=[(p, p) for p in padding], use_bias=False, name=name, dtype=dtype,
                 kernel_init=nn.initializers.variance_scaling(2.0, "fan_out", "normal"))


class BasicBlock(nn.Module):
  """Two 3x3 convolutions with an identity (or 1x1 strided) shortcut; expansion 1."""
  planes: int
  stride: int = 1
  downsample: bool = False
  dtype: Any = jnp.float32
  expansion = 1

  @nn.compact
  def __call__(self, x, *, train: bool):
    bn = functools.partial(_BatchNorm, use_running_average=not train, dtype=self.dtype)
    y = _conv(self.planes, (3, 3), (self.stride,) * 2, 1, "conv1", self.dtype)(x)
    y = nn.relu(bn(name="bn1")(y))
    y = _conv(self.planes, (3, 3), (1, 1), 1, "conv2", self.dtype)(y)
    y = bn(name="bn2")(y)
    if self.downsample:
      x = _conv(self.planes, (1, 1), (self.stride,) * 2, 0, "downsample_0", self.dtype)(x)
      x = bn(name="downsample_1")(x)
    return nn.relu(x + y)


class Bottleneck(nn.Module):
  """1x1 -> 3x3 (strided, torchvision's "ResNet v1.5") -> 1x1 with expansion 4."""
  planes: int
  stride: int = 1
  downsample: bool = False
  dtype: Any = jnp.float32
  expansion = 4

  @nn.compact
  def __call__(self, x, *, train: bool):
    bn = functools.partial(_BatchNorm, use_running_average=not train, dtype=self.dtype)
    y = nn.relu(bn(name="bn1")(_conv(self.planes, (1, 1), (1, 1), 0, "conv1", self.dtype)(x)))
    y = _conv(self.planes, (3, 3), (self.stride,) * 2, 1, "conv2", self.dtype)(y)
    y = nn.relu(bn(name="bn2")(y))
    y = _conv(self.planes * 4, (1, 1), (1, 1), 0, "conv3", self.dtype)(y)
    y = bn(name="bn3")(y)
    if self.downsample:
      x = _conv(self.planes * 4, (1, 1), (self.stride,) * 2, 0, "downsample_0", self.dtype)(x)
      x = bn(name="downsample_1")(x)
    return nn.relu(x + y)


class ResNet(nn.Module):
  """``[B, H, W, C] -> [B, num_filters * 8 * expansion]`` (torchvision's ResNet minus ``fc``).

  Attributes:
    stage_sizes: blocks per stage, e.g. ``(2, 2, 2, 2)`` (ResNet-18), ``(3, 4, 23, 3)``
      (ResNet-101).
    block: ``"basic"`` or ``"bottleneck"``.
    num_filters: width of the first stage (64 in torchvision; smaller for tests).
  """
  stage_sizes: Sequence[int]
  block: str = "basic"
  num_filters: int = 64
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    if x.ndim != 4:
      raise ValueError(f"ResNet expects [B, H, W, C] inputs, got shape {x.shape}")
    block_cls = {"basic": BasicBlock, "bottleneck": Bottleneck}[self.block]
    x = _conv(self.num_filters, (7, 7), (2, 2), 3, "conv1", self.dtype)(x.astype(self.dtype))
    x = _BatchNorm(use_running_average=not train, dtype=self.dtype, name="bn1")(x)
    x = nn.relu(x)
    x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    in_planes = self.num_filters
    for i, size in enumerate(self.stage_sizes):
      planes = self.num_filters * 2 ** i
      for j in range(size):
        stride = 2 if i > 0 and j == 0 else 1
        downsample = j == 0 and (stride != 1 or in_planes != planes * block_cls.expansion)
        x = block_cls(planes, stride, downsample, self.dtype,
                      name=f"layer{i + 1}_{j}")(x, train=train)
        in_planes = planes * block_cls.expansion
    return jnp.mean(x, axis=(1, 2)).astype(jnp.float32)


def resnet18(**kwargs) -> ResNet:
  return ResNet((2, 2, 2, 2), "basic", **kwargs)


def resnet101(**kwargs) -> ResNet:
  return ResNet((3, 4, 23, 3), "bottleneck", **kwargs)


def _conv2plus1d(x, planes: int, midplanes: int, stride: int, *, train: bool, prefix: str,
                dtype: Any):
  """torchvision's ``Conv2Plus1D``: a (1, 3, 3) spatial convolution, BatchNorm, ReLU, then a
  (3, 1, 1) temporal one. Called inside a compact module, so its layers are that module's
  children named ``{prefix}_0``, ``{prefix}_1``, ``{prefix}_3`` (torchvision's Sequential)."""
  s = stride
  x = _conv(midplanes, (1, 3, 3), (1, s, s), (0, 1, 1), f"{prefix}_0", dtype)(x)
  x = _BatchNorm(use_running_average=not train, dtype=dtype, name=f"{prefix}_1")(x)
  x = nn.relu(x)
  return _conv(planes, (3, 1, 1), (s, 1, 1), (1, 0, 0), f"{prefix}_3", dtype)(x)


class R2Plus1DBlock(nn.Module):
  """torchvision's video ``BasicBlock`` with ``Conv2Plus1D`` convolutions."""
  in_planes: int
  planes: int
  stride: int = 1
  downsample: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, *, train: bool):
    mid = (self.in_planes * self.planes * 27) // (self.in_planes * 9 + 3 * self.planes)
    bn = functools.partial(_BatchNorm, use_running_average=not train, dtype=self.dtype)
    y = _conv2plus1d(x, self.planes, mid, self.stride, train=train, prefix="conv1_0",
                     dtype=self.dtype)
    y = nn.relu(bn(name="conv1_1")(y))
    y = _conv2plus1d(y, self.planes, mid, 1, train=train, prefix="conv2_0", dtype=self.dtype)
    y = bn(name="conv2_1")(y)
    if self.downsample:
      s = self.stride
      x = _conv(self.planes, (1, 1, 1), (s, s, s), 0, "downsample_0", self.dtype)(x)
      x = bn(name="downsample_1")(x)
    return nn.relu(x + y)


class R2Plus1D(nn.Module):
  """``[B, T, H, W, 3] -> [B, num_filters * 8]``: torchvision's ``r2plus1d_18`` minus ``fc``."""
  stage_sizes: Sequence[int] = (2, 2, 2, 2)
  num_filters: int = 64
  stem_mid: int = 45
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    if x.ndim != 5:
      raise ValueError(f"R2Plus1D expects [B, T, H, W, C] clips, got shape {x.shape}")
    bn = functools.partial(_BatchNorm, use_running_average=not train, dtype=self.dtype)
    x = _conv(self.stem_mid, (1, 7, 7), (1, 2, 2), (0, 3, 3), "stem_0", self.dtype)(
        x.astype(self.dtype))
    x = nn.relu(bn(name="stem_1")(x))
    x = _conv(self.num_filters, (3, 1, 1), (1, 1, 1), (1, 0, 0), "stem_3", self.dtype)(x)
    x = nn.relu(bn(name="stem_4")(x))
    in_planes = self.num_filters
    for i, size in enumerate(self.stage_sizes):
      planes = self.num_filters * 2 ** i
      for j in range(size):
        stride = 2 if i > 0 and j == 0 else 1
        downsample = j == 0 and (stride != 1 or in_planes != planes)
        x = R2Plus1DBlock(in_planes, planes, stride, downsample, self.dtype,
                          name=f"layer{i + 1}_{j}")(x, train=train)
        in_planes = planes
    return jnp.mean(x, axis=(1, 2, 3)).astype(jnp.float32)


def r2plus1d_18(**kwargs) -> R2Plus1D:
  return R2Plus1D((2, 2, 2, 2), **kwargs)
