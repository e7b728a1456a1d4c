"""Diversity sampling on the fused features: CoreSet (k-center greedy) and k-means.

Also the two building blocks other strategies share: ``kmeans_plusplus`` seeding over any
squared distance given as a function (BADGE and BMMAL pass a factorised one), and squared
Euclidean distances computed blockwise so an ``[N, N]`` matrix is never formed.
"""

from __future__ import annotations

from typing import Callable

import chex
import jax
import jax.numpy as jnp

from rlmba_jax.selection.base import PoolView, register

_HIGHEST = jax.lax.Precision.HIGHEST


def squared_distances(x: jnp.ndarray, y: jnp.ndarray,
                      x_squared_norms: jnp.ndarray | None = None) -> jnp.ndarray:
  """``||x_i - y_j||^2`` for ``x [N, D]``, ``y [K, D]`` -> ``[N, K]`` (clipped at 0).

  ``x_squared_norms [N]``: ``sum(x * x, -1)`` when the caller already has it (loops over
  the same ``x`` compute it once, outside the loop, whatever the compiler hoists).
  """
  chex.assert_rank((x, y), 2)
  if x_squared_norms is None:
    x_squared_norms = jnp.sum(x * x, -1)
  cross = jnp.dot(x, y.T, precision=_HIGHEST)
  d = x_squared_norms[:, None] - 2.0 * cross + jnp.sum(y * y, -1)[None, :]
  return jnp.maximum(d, 0.0)


def take_rows(x: jnp.ndarray, index: jnp.ndarray) -> jnp.ndarray:
  """``x[index]`` as a gather: ``x [N, ...]``, ``index`` scalar or ``[K]`` int.

  Written as a gather (not a dynamic slice) so that, when ``x`` is split over devices along
  N, each device reads only its own rows and one small all-reduce assembles the result;
  ``x[j]`` would first gather the whole of ``x`` onto every device.
  """
  return jnp.take(x, index, axis=0, mode="clip")


def min_squared_distance_to_set(x: jnp.ndarray, members: jnp.ndarray, block: int = 1024
                                ) -> jnp.ndarray:
  """``min_{j: members_j} ||x_i - x_j||^2`` for every row i; ``inf`` if there is no member.

  ``x [N, D]``, ``members [N]`` bool -> ``[N]``. Members are visited ``block`` at a time in a
  ``while_loop`` whose trip count is the number of members, so the cost is
  ``O(N * |members| * D)`` with ``[N, block]`` memory, whatever the mask.
  """
  chex.assert_rank(x, 2)
  chex.assert_shape(members, (x.shape[0],))
  n = x.shape[0]
  block = min(block, n)
  num_blocks = -(-n // block)
  order = jnp.argsort(~members, stable=True)  # members first
  order = jnp.pad(order, (0, num_blocks * block - n))
  count = jnp.sum(members)

  def body(carry):
    b, best = carry
    idx = jax.lax.dynamic_slice(order, (b * block,), (block,))
    valid = b * block + jnp.arange(block) < count
    d = jnp.where(valid[None, :], squared_distances(x, take_rows(x, idx)), jnp.inf)
    return b + 1, jnp.minimum(best, jnp.min(d, axis=1))

  _, best = jax.lax.while_loop(lambda c: c[0] * block < count, body,
                               (jnp.int32(0), jnp.full((n,), jnp.inf, x.dtype)))
  return best


def kcenter_greedy(features: jnp.ndarray, labelled: jnp.ndarray, budget: int) -> jnp.ndarray:
  """Greedy k-center (Sener & Savarese's CoreSet): ``budget`` unlabelled rows, each the one
  farthest from the labelled set and the rows already picked.

  ``features [N, D]``, ``labelled [N]`` -> ``[budget]`` int32. Ties go to the lower position;
  with nothing labelled the first pick is the first unlabelled row. ``O(N (L + b) D)``.
  """
  chex.assert_rank(features, 2)
  n = features.shape[0]
  nearest = min_squared_distance_to_set(features, labelled)
  norms = jnp.sum(features * features, -1)

  def step(t, carry):
    nearest, chosen, picks = carry
    j = jnp.argmax(jnp.where(labelled | chosen, -jnp.inf, nearest)).astype(jnp.int32)
    d = squared_distances(features, take_rows(features, j[None]), norms)[:, 0]
    return jnp.minimum(nearest, d), chosen.at[j].set(True), picks.at[t].set(j)

  init = (nearest, jnp.zeros(n, bool), jnp.zeros(budget, jnp.int32))
  return jax.lax.fori_loop(0, budget, step, init)[2]


def kmeans_plusplus(key: jax.Array, squared_norms: jnp.ndarray,
                    squared_distance_to: Callable[[jnp.ndarray], jnp.ndarray],
                    available: jnp.ndarray, budget: int, first: str = "max_norm"
                    ) -> jnp.ndarray:
  """k-means++ seeding (Arthur & Vassilvitskii) among the ``available`` rows.

  Each next pick is drawn with probability proportional to the squared distance to the
  nearest pick so far (D^2 sampling), as BADGE does.

  Args:
    key: PRNG key; pick t uses ``fold_in(key, t)``.
    squared_norms: ``[N]`` squared norm of each row (for ``first="max_norm"``).
    squared_distance_to: ``j -> [N]`` squared distances from every row to row j.
    available: ``[N]`` bool, rows that may be picked.
    budget: number of picks (static), at most ``available.sum()``.
    first: ``"max_norm"`` (BADGE: the row of largest norm) or ``"random"`` (uniform).

  Returns:
    ``[budget]`` int32 positions, distinct. When every open row sits on a pick (all D^2 = 0)
    the next pick is uniform over the open rows.
  """
  chex.assert_rank((squared_norms, available), 1)
  n = squared_norms.shape[0]
  if first == "max_norm":
    j0 = jnp.argmax(jnp.where(available, squared_norms, -jnp.inf)).astype(jnp.int32)
  elif first == "random":
    j0 = jax.random.categorical(jax.random.fold_in(key, 0),
                                jnp.where(available, 0.0, -jnp.inf)).astype(jnp.int32)
  else:
    raise ValueError(f"first={first!r}; use 'max_norm' or 'random'")

  def step(t, carry):
    nearest, chosen, picks = carry
    open_rows = available & ~chosen
    weight = jnp.where(open_rows, nearest, 0.0)
    logits = jnp.where(jnp.sum(weight) > 0, jnp.log(weight),
                       jnp.where(open_rows, 0.0, -jnp.inf))
    j = jax.random.categorical(jax.random.fold_in(key, t), logits).astype(jnp.int32)
    return (jnp.minimum(nearest, jnp.maximum(squared_distance_to(j), 0.0)),
            chosen.at[j].set(True), picks.at[t].set(j))

  init = (jnp.maximum(squared_distance_to(j0), 0.0), jnp.zeros(n, bool).at[j0].set(True),
          jnp.zeros(budget, jnp.int32).at[0].set(j0))
  return jax.lax.fori_loop(1, budget, step, init)[2].astype(jnp.int32)


def lloyd_kmeans(features: jnp.ndarray, weights: jnp.ndarray, centroids: jnp.ndarray,
                 iterations: int) -> jnp.ndarray:
  """``iterations`` Lloyd steps on the rows with weight > 0. -> ``[K, D]`` centroids.

  ``features [N, D]``, ``weights [N]`` (0 drops a row), ``centroids [K, D]`` initial. A
  centroid that loses all its rows stays where it was.
  """
  chex.assert_rank((features, weights, centroids), (2, 1, 2))

  norms = jnp.sum(features * features, -1)

  def step(_, c):
    assign = jnp.argmin(squared_distances(features, c, norms), axis=1)
    onehot = jax.nn.one_hot(assign, c.shape[0], dtype=features.dtype) * weights[:, None]
    sums = jnp.dot(onehot.T, features, precision=_HIGHEST)
    counts = jnp.sum(onehot, axis=0)[:, None]
    return jnp.where(counts > 0, sums / jnp.maximum(counts, 1e-12), c)

  return jax.lax.fori_loop(0, iterations, step, centroids)


def nearest_distinct(features: jnp.ndarray, centroids: jnp.ndarray, available: jnp.ndarray
                     ) -> jnp.ndarray:
  """For each centroid in turn, the nearest available row not yet taken. -> ``[K]`` int32."""
  d = squared_distances(features, centroids)

  def step(t, carry):
    taken, picks = carry
    j = jnp.argmin(jnp.where(available & ~taken, d[:, t], jnp.inf)).astype(jnp.int32)
    return taken.at[j].set(True), picks.at[t].set(j)

  init = (jnp.zeros(features.shape[0], bool), jnp.zeros(centroids.shape[0], jnp.int32))
  return jax.lax.fori_loop(0, centroids.shape[0], step, init)[1]


def kmeans_centroids(key: jax.Array, features: jnp.ndarray, available: jnp.ndarray, k: int,
                     iterations: int) -> jnp.ndarray:
  """k-means on the available rows: k-means++ start (first pick uniform), then
  ``iterations`` Lloyd steps. ``features [N, D]`` -> ``[k, D]`` centroids."""
  norms = jnp.sum(features * features, -1)

  def to_row(j):
    return squared_distances(features, take_rows(features, j[None]), norms)[:, 0]

  seeds = kmeans_plusplus(key, norms, to_row, available, k, first="random")
  return lloyd_kmeans(features, available.astype(features.dtype), take_rows(features, seeds),
                      iterations)


def kmeans_select(key: jax.Array, features: jnp.ndarray, available: jnp.ndarray, budget: int,
                  iterations: int = 10) -> jnp.ndarray:
  """k-means with k = ``budget`` on the available rows, then the available row nearest to
  each centroid. -> ``[budget]`` int32."""
  centroids = kmeans_centroids(key, features, available, budget, iterations)
  return nearest_distinct(features, centroids, available)


@register("coreset", reads=("features",))
def coreset_sampling(key: jax.Array, pool: PoolView, budget: int) -> jnp.ndarray:
  """CoreSet: k-center greedy from the labelled set on the fused features (``key`` unused)."""
  del key
  return kcenter_greedy(pool.fused_features(), pool.labelled, budget)


@register("kmeans", reads=("features",))
def kmeans_sampling(key: jax.Array, pool: PoolView, budget: int, iterations: int = 10
                    ) -> jnp.ndarray:
  """k-means (k = budget) on the unlabelled fused features; the row nearest each centroid."""
  return kmeans_select(key, pool.fused_features(), ~pool.labelled, budget, iterations)
