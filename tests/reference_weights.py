"""Seeded weights by tensor name, shared by the parity tests and the script that computed their
PyTorch reference outputs (``tests/fixtures/make_reference_fixtures.py``)."""

from __future__ import annotations

import zlib

import numpy as np


def seeded_tensor(name: str, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
  """A float32 tensor that depends only on ``name``, ``shape`` and ``seed``; scaled so that
  activations stay O(1) through deep networks (LeCun-scaled weights, BatchNorm near identity)."""
  rng = np.random.default_rng([zlib.crc32(name.encode()), seed])
  leaf = name.rsplit(".", 1)[-1]
  if leaf == "running_var":
    return rng.uniform(0.5, 1.5, shape).astype(np.float32)
  if leaf in ("running_mean", "bias"):
    return (0.1 * rng.standard_normal(shape)).astype(np.float32)
  if len(shape) == 1:  # BatchNorm / LayerNorm scale
    return rng.uniform(0.5, 1.5, shape).astype(np.float32)
  fan_in = int(np.prod(shape[1:])) if len(shape) > 2 else shape[-1]
  if "embeddings" in name:
    return (0.5 * rng.standard_normal(shape)).astype(np.float32)
  return (rng.standard_normal(shape) * np.sqrt(1.0 / fan_in)).astype(np.float32)


def seeded_state_dict(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, np.ndarray]:
  return {k: seeded_tensor(k, tuple(v), seed) for k, v in sorted(shapes.items())}


def seeded_input(shape: tuple[int, ...], seed: int = 1) -> np.ndarray:
  return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
