"""Seeds on an array axis: one run computes S seeds of one config in lockstep.

A seed-batched run (``run(config, workdir, seeds=[...])``, ``--seeds=0-49``) holds the
state of S runs stacked on a leading seed axis and runs each round step once for all of
them: the step's compiled program is the single run's program mapped over the seeds
(``SeedBatch.map``), and the few eager pieces of a round (AMCB's update, the policy's
first state) run per seed (``SeedBatch.each``), exactly as a single run runs them. The
single run is the same code with ``batched=False``: ``map`` and ``each`` are then the
identity and arrays carry no seed axis, so its programs and numbers are those of before.

How seeds share a program (``vmap_width``, W):

* ``W = 1``: the seeds go one after another inside each program (``jax.lax.map``). Every
  number equals the single run's of the same seed, bit for bit (the same compiled
  computation per seed); one dispatch, one host sync and one checkpoint serve S seeds.
  The default on a CPU, where a run of these small models already keeps the cores busy.
* ``W > 1``: W seeds at a time are vectorised (``jax.vmap``); ``W = 0`` (or ``W >= S``):
  all of them. This is what fills an accelerator, and it changes float reduction order,
  so seeds agree with single runs to the last bits rather than exactly (``launch/
  benchmark.py --which=seeds`` measures both). The default on a GPU or TPU is all seeds.

On a ``(seeds, data)`` mesh (``parallel.make_seed_mesh``) the seed axis is split over the
``seeds`` devices (``jax.vmap(..., spmd_axis_name="seeds")`` over device groups, each
mapping its own seeds), and each seed's batches over ``data`` as in a single run.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from rlmba_jax import parallel

SEED_FOLDER = "seed_{:04d}"  # a batched run's per-seed output folder: WORKDIR/seed_0007


def seed_folder(seed: int) -> str:
  return SEED_FOLDER.format(int(seed))


def parse_seeds(text: str | int | Sequence[int]) -> tuple[int, ...]:
  """``"0-49"``, ``"0,3,7"``, ``"0-9,100-109"`` or a list -> distinct seeds in the given
  order; a ``ValueError`` naming what is wrong."""
  if isinstance(text, (int, np.integer)):
    items: list[int] = [int(text)]
  elif isinstance(text, str):
    items = []
    for piece in (p.strip() for p in text.split(",")):
      if not piece:
        continue
      m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", piece)
      if m:
        lo, hi = int(m.group(1)), int(m.group(2))
        if hi < lo:
          raise ValueError(f"seed range {piece!r} runs backwards; write {hi}-{lo}")
        items.extend(range(lo, hi + 1))
      elif re.fullmatch(r"\d+", piece):
        items.append(int(piece))
      else:
        raise ValueError(f"--seeds: {piece!r} is not a seed or a range like 0-49")
  else:
    items = [int(s) for s in text]
  if not items:
    raise ValueError("no seeds given; write them as 0-49 or 0,3,7")
  repeated = sorted({s for s in items if items.count(s) > 1})
  if repeated:
    raise ValueError(f"seeds {repeated} are given twice")
  bad = [s for s in items if not 0 <= s < 2 ** 31]
  if bad:
    raise ValueError(f"seeds {bad[:5]} are outside [0, 2^31)")
  return tuple(items)


def default_vmap_width() -> int:
  """1 on a CPU (the seeds one after another: exact, and as fast there), 0 (all seeds
  vectorised) on a GPU or TPU."""
  return 1 if jax.default_backend() == "cpu" else 0


class SeedBatch:
  """The seeds a run computes and how their programs are built.

  Args:
    seeds: the seeds, in the order of the seed axis.
    mesh: the run's mesh; a batched run's has a ``seeds`` axis (``make_seed_mesh``).
    batched: False for a single run (one seed, arrays without a seed axis).
    vmap_width: seeds vectorised together inside a program (module docstring); 0: all.
  """

  def __init__(self, seeds: Sequence[int], *, mesh: Mesh, batched: bool = True,
               vmap_width: int = 1):
    self.seeds = tuple(int(s) for s in seeds)
    if not batched and len(self.seeds) != 1:
      raise ValueError(f"a single run has one seed, got {self.seeds}")
    if vmap_width < 0:
      raise ValueError(f"vmap_width={vmap_width} must be 0 (all seeds) or positive")
    self.batched, self.mesh, self.vmap_width = batched, mesh, int(vmap_width)
    self.seed_devices = parallel.seeds_axis_size(mesh) if batched else 1
    if self.size % self.seed_devices:
      raise ValueError(f"{self.size} seeds do not split over {self.seed_devices} devices")
    self._programs: dict[Any, Callable] = {}

  @property
  def size(self) -> int:
    return len(self.seeds)

  @property
  def sharding(self):
    """Where arrays with a leading seed axis live."""
    return parallel.seeds_sharding(self.mesh) if self.batched else parallel.replicated(
        self.mesh)

  # -- programs --------------------------------------------------------------------------

  def map(self, fn: Callable, in_axes: Sequence[int | None], *,
          donate_argnums: tuple[int, ...] = ()) -> Callable:
    """``fn`` over the seed axis: positional arguments with ``in_axes`` 0 carry a leading
    axis of S seeds, those with None are shared by every seed; every output gets the seed
    axis. One jitted program, built once per ``(fn, in_axes)`` (``fn`` must be a stable
    object: a module-level function, a bound method or one made once). A single run gets
    ``fn`` itself."""
    if not self.batched:
      return fn
    key = (fn, tuple(in_axes), tuple(donate_argnums))
    program = self._programs.get(key)
    if program is None:
      program = self._programs[key] = self._build(fn, tuple(in_axes), donate_argnums)
    return program

  def _build(self, fn, in_axes, donate_argnums):
    per_device = self.size // self.seed_devices
    width = per_device if self.vmap_width == 0 else min(self.vmap_width, per_device)

    def mapped(*args):
      if len(args) != len(in_axes):
        raise TypeError(f"{getattr(fn, '__name__', fn)} over seeds takes {len(in_axes)} "
                        f"arguments, got {len(args)}")
      lanes = tuple(a for a, axis in zip(args, in_axes) if axis == 0)

      def one(lane_args):
        it = iter(lane_args)
        return fn(*(next(it) if axis == 0 else a for a, axis in zip(args, in_axes)))

      def over(group):
        if width >= per_device and width > 1:
          return jax.vmap(one)(group)
        return jax.lax.map(one, group, batch_size=width if width > 1 else None)

      if self.seed_devices == 1:
        return over(lanes)
      d = self.seed_devices
      grouped = jax.tree.map(lambda x: x.reshape((d, per_device) + x.shape[1:]), lanes)
      out = jax.vmap(over, spmd_axis_name=parallel.SEEDS_AXIS)(grouped)
      return jax.tree.map(lambda x: x.reshape((d * per_device,) + x.shape[2:]), out)

    return jax.jit(mapped, donate_argnums=donate_argnums)

  def each(self, fn: Callable, *args) -> Any:
    """``fn`` called eagerly for each seed on that seed's slice of ``args`` (every leaf
    has the seed axis), the results stacked: for a round's eager pieces, which must run as
    a single run runs them to give its numbers. A single run: ``fn(*args)``."""
    if not self.batched:
      return fn(*args)
    return self.stack([fn(*self.take(args, i)) for i in range(self.size)])

  # -- moving between the seed axis and per-seed values ----------------------------------

  def take(self, tree: Any, i: int) -> Any:
    """Seed ``i``'s slice of a tree with the seed axis (the tree itself in a single run)."""
    if not self.batched:
      return tree
    return jax.tree.map(lambda x: x[i], tree)

  def split(self, tree: Any) -> list[Any]:
    """The tree on the host, one slice per seed (one transfer for all seeds)."""
    if self.batched and jax.process_count() > 1:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      tree = multihost_utils.process_allgather(tree, tiled=True)
    host = jax.device_get(tree)
    if not self.batched:
      return [host]
    return [jax.tree.map(lambda x: x[i], host) for i in range(self.size)]

  def stack(self, trees: Sequence[Any]) -> Any:
    """Per-seed trees stacked on a leading seed axis and placed on the mesh (a single run:
    the one tree as it is)."""
    if not self.batched:
      return trees[0]
    return self.put(jax.tree.map(lambda *xs: jnp.stack(xs), *trees))

  def put(self, tree: Any) -> Any:
    """A tree whose leaves have the leading seed axis, placed along the seeds axis."""
    sharding = self.sharding
    if jax.process_count() == 1:
      return jax.device_put(tree, sharding)

    def put_leaf(x):
      if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        return jax.random.wrap_key_data(put_leaf(jax.random.key_data(x)))
      x = np.asarray(jax.device_get(x))
      return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])
    return jax.tree.map(put_leaf, tree)

  def tile(self, tree: Any) -> Any:
    """One seed's tree repeated for every seed (a single run: the tree)."""
    return self.stack([tree] * self.size)
