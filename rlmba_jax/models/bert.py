"""A BERT-family text encoder (Devlin et al. 2019) with Hugging Face's module names.

``Bert(config)(token_ids) -> [B, hidden]``: token ids ``[B, L]`` int32 with 0 as padding
(the attention mask is ``ids != 0``; segment ids are all 0). Submodules are named after
``transformers.BertModel`` (``embeddings/word_embeddings``, ``encoder/layer_3/attention/self/
query`` = HF ``encoder.layer.3.attention.self.query``), so ``models.pretrained`` loads BERT,
MiniLM and other BERT-architecture safetensors by name. Pooling: ``cls`` (the first token's
last hidden state, as the balanced multimodal AL code uses) or ``mean`` (the masked mean that
sentence-transformers models such as all-MiniLM-L6-v2 use), optionally L2-normalised.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from rlmba_jax.config_choices import POOLINGS


@dataclasses.dataclass(frozen=True)
class BertConfig:
  """The architecture; field names as in Hugging Face's ``config.json``."""
  vocab_size: int = 30522
  hidden_size: int = 768
  num_hidden_layers: int = 12
  num_attention_heads: int = 12
  intermediate_size: int = 3072
  max_position_embeddings: int = 512
  type_vocab_size: int = 2
  layer_norm_eps: float = 1e-12
  hidden_dropout_prob: float = 0.1
  attention_probs_dropout_prob: float = 0.1

  @classmethod
  def from_json(cls, path: str) -> "BertConfig":
    """Reads a Hugging Face ``config.json`` (unknown keys ignored)."""
    try:
      with open(path) as f:
        raw = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
      raise ValueError(f"cannot read the BERT config {path!r}: {e}") from e
    if raw.get("hidden_act", "gelu") != "gelu":
      raise ValueError(f"{path}: hidden_act={raw['hidden_act']!r}; only 'gelu' (exact) is "
                       "implemented")
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in raw.items() if k in names})

  @classmethod
  def next_to(cls, weights_path: str) -> "BertConfig":
    """The ``config.json`` in the folder of a ``model.safetensors``."""
    path = os.path.join(os.path.dirname(os.path.abspath(weights_path)), "config.json")
    if not os.path.exists(path):
      raise FileNotFoundError(f"no config.json next to {weights_path!r}; BERT weights need "
                              "their Hugging Face config.json in the same folder")
    return cls.from_json(path)


def _dense(features: int, name: str, dtype: Any) -> nn.Dense:
  return nn.Dense(features, name=name, dtype=dtype,
                  kernel_init=nn.initializers.normal(0.02))


def _layer_norm(config: BertConfig, dtype: Any) -> nn.LayerNorm:
  return nn.LayerNorm(epsilon=config.layer_norm_eps, name="LayerNorm", dtype=dtype)


class BertSelfAttention(nn.Module):
  config: BertConfig
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, bias, *, train: bool):
    c = self.config
    heads, width = c.num_attention_heads, c.hidden_size // c.num_attention_heads
    split = lambda y: y.reshape(y.shape[:2] + (heads, width))
    q = split(_dense(c.hidden_size, "query", self.dtype)(x))
    k = split(_dense(c.hidden_size, "key", self.dtype)(x))
    v = split(_dense(c.hidden_size, "value", self.dtype)(x))
    scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(width).astype(q.dtype)
    probs = jax.nn.softmax(scores.astype(jnp.float32) + bias, axis=-1).astype(self.dtype)
    probs = nn.Dropout(c.attention_probs_dropout_prob, deterministic=not train)(probs)
    out = jnp.einsum("bhqk,bkhd->bqhd", probs, v)
    return out.reshape(out.shape[:2] + (c.hidden_size,))


class BertResidualOutput(nn.Module):
  """Dense, dropout, residual, LayerNorm (HF's ``BertSelfOutput`` / ``BertOutput``)."""
  config: BertConfig
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, residual, *, train: bool):
    x = _dense(self.config.hidden_size, "dense", self.dtype)(x)
    x = nn.Dropout(self.config.hidden_dropout_prob, deterministic=not train)(x)
    return _layer_norm(self.config, self.dtype)(x + residual)


class BertAttention(nn.Module):
  config: BertConfig
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, bias, *, train: bool):
    y = BertSelfAttention(self.config, self.dtype, name="self")(x, bias, train=train)
    return BertResidualOutput(self.config, self.dtype, name="output")(y, x, train=train)


class BertIntermediate(nn.Module):
  config: BertConfig
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    return nn.gelu(_dense(self.config.intermediate_size, "dense", self.dtype)(x),
                   approximate=False)


class BertLayer(nn.Module):
  config: BertConfig
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, bias, *, train: bool):
    x = BertAttention(self.config, self.dtype, name="attention")(x, bias, train=train)
    y = BertIntermediate(self.config, self.dtype, name="intermediate")(x)
    return BertResidualOutput(self.config, self.dtype, name="output")(y, x, train=train)


class BertEncoderStack(nn.Module):
  config: BertConfig
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, bias, *, train: bool):
    for i in range(self.config.num_hidden_layers):
      x = BertLayer(self.config, self.dtype, name=f"layer_{i}")(x, bias, train=train)
    return x


class BertEmbeddings(nn.Module):
  config: BertConfig
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, ids, *, train: bool):
    c = self.config
    embed = lambda n, name: nn.Embed(n, c.hidden_size, name=name, dtype=self.dtype,
                                     embedding_init=nn.initializers.normal(0.02))
    positions = jnp.arange(ids.shape[1])[None, :]
    x = (embed(c.vocab_size, "word_embeddings")(ids)
         + embed(c.max_position_embeddings, "position_embeddings")(positions)
         + embed(c.type_vocab_size, "token_type_embeddings")(jnp.zeros_like(ids)))
    x = _layer_norm(c, self.dtype)(x)
    return nn.Dropout(c.hidden_dropout_prob, deterministic=not train)(x)


class Bert(nn.Module):
  """``[B, L]`` int token ids (0 = padding) -> ``[B, hidden]`` pooled text features.

  Attributes:
    config: the architecture.
    pooling: ``"cls"`` or ``"mean"``.
    normalize: L2-normalise the pooled vector (sentence-transformers' ``Normalize``).
  """
  config: BertConfig = BertConfig()
  pooling: str = "cls"
  normalize: bool = False
  dtype: Any = jnp.float32

  def _hidden_states(self, ids, *, train: bool = False):
    ids = ids.astype(jnp.int32)
    if ids.shape[1] > self.config.max_position_embeddings:
      raise ValueError(f"token sequences of length {ids.shape[1]} exceed the model's "
                       f"{self.config.max_position_embeddings} positions")
    mask = ids != 0
    bias = jnp.where(mask, 0.0, jnp.finfo(jnp.float32).min)[:, None, None, :]
    x = BertEmbeddings(self.config, self.dtype, name="embeddings")(ids, train=train)
    x = BertEncoderStack(self.config, self.dtype, name="encoder")(x, bias, train=train)
    return x.astype(jnp.float32), mask

  @nn.compact
  def __call__(self, ids, *, train: bool = False):
    if ids.ndim != 2:
      raise ValueError(f"Bert expects [B, L] token ids, got shape {ids.shape}")
    x, mask = self._hidden_states(ids, train=train)
    if self.pooling == "cls":
      pooled = x[:, 0]
    elif self.pooling == "mean":
      m = mask.astype(x.dtype)[..., None]
      pooled = jnp.sum(x * m, axis=1) / jnp.maximum(jnp.sum(m, axis=1), 1e-9)
    else:
      raise ValueError(f"Bert pooling={self.pooling!r}; use 'cls' or 'mean'")
    if self.normalize:
      pooled = pooled / jnp.maximum(jnp.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12)
    return pooled
