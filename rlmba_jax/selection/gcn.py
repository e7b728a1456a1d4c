r"""GCNAL: sequential GCN selection (Caramalau et al., CVPR 2021), as the BMMAL code runs it.

A graph over the whole pool (labelled and unlabelled) links examples by the cosine similarity
of their fused features: with row-normalised features ``X``,

    A = (X X^T - I) diag(1 / d) + I,     d_j = sum_i (X X^T - I)_ij,

and a two-layer GCN is trained (Adam, L2 weight decay, dropout) to tell labelled (1) from
unlabelled (0) nodes with ``-mean_l log s - lambda mean_u log(1 - s)``. Selection then uses
its output: ``coregcn`` runs k-center greedy from the labelled set on the GCN's features
(hidden layer joined with the score), ``uncertaingcn`` takes the unlabelled nodes whose score
is closest to ``margin``.

``A`` is never formed: ``A V = X (X^T (V / d)) - V / d + V``, so a propagation costs
``O(N D H)`` and memory ``O(N (D + H))`` (the reference builds ``A`` in 20,000-node blocks,
each its own graph; here the whole pool is one graph).
"""

from __future__ import annotations

from typing import Callable

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from rlmba_jax.config_choices import GCN_METHODS
from rlmba_jax.selection.base import PoolView, register, top_scores
from rlmba_jax.selection.diversity import kcenter_greedy


_HIGHEST = jax.lax.Precision.HIGHEST


def cosine_graph_propagation(features: jnp.ndarray) -> Callable[[jnp.ndarray], jnp.ndarray]:
  """``V [N, H] -> A V`` for the graph above, without forming ``A``. ``features [N, D]``."""
  chex.assert_rank(features, 2)
  x = features / jnp.maximum(jnp.linalg.norm(features, axis=-1, keepdims=True), 1e-12)
  degree = jnp.dot(x, jnp.sum(x, 0), precision=_HIGHEST) - 1.0
  degree = jnp.where(jnp.abs(degree) < 1e-6, 1e-6, degree)

  def propagate(v):
    u = v / degree[:, None]
    return jnp.dot(x, jnp.dot(x.T, u, precision=_HIGHEST), precision=_HIGHEST) - u + v

  return propagate


def dense_cosine_adjacency(features: jnp.ndarray) -> jnp.ndarray:
  """The ``[N, N]`` matrix ``A`` itself (for tests on small graphs)."""
  x = features / jnp.maximum(jnp.linalg.norm(features, axis=-1, keepdims=True), 1e-12)
  adj = jnp.dot(x, x.T, precision=_HIGHEST) - jnp.eye(x.shape[0])
  degree = jnp.sum(adj, 0)
  degree = jnp.where(jnp.abs(degree) < 1e-6, 1e-6, degree)
  return adj / degree[None, :] + jnp.eye(x.shape[0])


def _uniform_fan_out(key, shape, dtype=jnp.float32):
  bound = 1.0 / jnp.sqrt(shape[-1])
  return jax.random.uniform(key, shape, dtype, -bound, bound)


class GraphConvolution(nn.Module):
  """``A (V W) + b`` (Kipf & Welling)."""
  features: int

  @nn.compact
  def __call__(self, v, propagate):
    w = self.param("kernel", _uniform_fan_out, (v.shape[-1], self.features))
    b = self.param("bias", _uniform_fan_out, (self.features,))
    return propagate(jnp.dot(v, w)) + b


class LabelledNodeGCN(nn.Module):
  """Two graph convolutions -> (score logits ``[N]``, features ``[N, hidden + 1]``)."""
  hidden: int = 128
  dropout: float = 0.3

  @nn.compact
  def __call__(self, x, propagate, *, train: bool = False):
    h = nn.relu(GraphConvolution(self.hidden)(x, propagate))
    h = nn.Dropout(self.dropout, deterministic=not train)(h)
    s = GraphConvolution(1)(h, propagate)
    return s[:, 0], jnp.concatenate([h, s], -1)


def labelled_node_loss(score_logits: jnp.ndarray, labelled: jnp.ndarray,
                       unlabelled_weight: float) -> jnp.ndarray:
  """``-mean_l log s - lambda mean_u log(1 - s)`` with ``s = sigmoid(score_logits)``."""
  lab = labelled.astype(score_logits.dtype)
  unl = 1.0 - lab
  return (-jnp.sum(jax.nn.log_sigmoid(score_logits) * lab) / jnp.maximum(jnp.sum(lab), 1.0)
          - unlabelled_weight * jnp.sum(jax.nn.log_sigmoid(-score_logits) * unl)
          / jnp.maximum(jnp.sum(unl), 1.0))


def train_labelled_node_gcn(key: jax.Array, features: jnp.ndarray, labelled: jnp.ndarray, *,
                            epochs: int = 200, hidden: int = 128, dropout: float = 0.3,
                            learning_rate: float = 1e-3, weight_decay: float = 5e-4,
                            unlabelled_weight: float = 1.2
                            ) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Trains the GCN full-batch; -> (scores ``[N]`` in (0, 1), GCN features ``[N, H + 1]``)."""
  chex.assert_rank(features, 2)
  propagate = cosine_graph_propagation(features)
  model = LabelledNodeGCN(hidden, dropout)
  init_key, train_key = jax.random.split(key)
  params = model.init(init_key, features, propagate)
  optimizer = optax.chain(optax.add_decayed_weights(weight_decay), optax.adam(learning_rate))

  def loss_fn(p, k):
    logits, _ = model.apply(p, features, propagate, train=True, rngs={"dropout": k})
    return labelled_node_loss(logits, labelled, unlabelled_weight)

  def epoch(e, carry):
    p, opt_state = carry
    grads = jax.grad(loss_fn)(p, jax.random.fold_in(train_key, e))
    updates, opt_state = optimizer.update(grads, opt_state, p)
    return optax.apply_updates(p, updates), opt_state

  params, _ = jax.lax.fori_loop(0, epochs, epoch, (params, optimizer.init(params)))
  logits, gcn_features = model.apply(params, features, propagate)
  return jax.nn.sigmoid(logits), gcn_features


@register("gcnal", reads=("features",))
def gcnal_sampling(key: jax.Array, pool: PoolView, budget: int, method: str = "coregcn",
                   epochs: int = 200, hidden: int = 128, dropout: float = 0.3,
                   learning_rate: float = 1e-3, weight_decay: float = 5e-4,
                   unlabelled_weight: float = 1.2, margin: float = 0.1) -> jnp.ndarray:
  """GCNAL on the fused features; ``method`` is ``coregcn`` (default) or ``uncertaingcn``."""
  if method not in GCN_METHODS:
    raise ValueError(f"gcnal method={method!r}; use one of {GCN_METHODS}")
  scores, gcn_features = train_labelled_node_gcn(
      key, pool.fused_features(), pool.labelled, epochs=epochs, hidden=hidden,
      dropout=dropout, learning_rate=learning_rate, weight_decay=weight_decay,
      unlabelled_weight=unlabelled_weight)
  if method == "coregcn":
    return kcenter_greedy(gcn_features, pool.labelled, budget)
  return top_scores(-jnp.abs(scores - margin), ~pool.labelled, budget)
