"""Device mesh, shardings and multi-host start-up.

One data axis: batches, pool rows and pool chunks are split over it, parameters are
replicated. The same code runs on one CPU, one GPU, N local devices or a multi-host slice.
A seed-batched run (``experiment.seeds``) adds a ``seeds`` axis in front
(``make_seed_mesh``): the seeds' states are split over it, and each seed's batches over
``data`` as before.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"
SEEDS_AXIS = "seeds"


def initialize_distributed() -> None:
  """Calls ``jax.distributed.initialize()`` when this is one process of a multi-host job.

  Detected from ``JAX_COORDINATOR_ADDRESS`` (with ``JAX_NUM_PROCESSES``/``JAX_PROCESS_ID``)
  or a cluster environment JAX recognises (SLURM, Cloud TPU, ...) when
  ``RLMBA_DISTRIBUTED=1``. Must run before any other JAX call.
  """
  if os.environ.get("JAX_COORDINATOR_ADDRESS"):
    if os.environ.get("JAX_PLATFORMS", "") == "cpu":
      # Cross-process collectives on CPU (tests, CPU clusters) go through gloo.
      jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=os.environ["JAX_COORDINATOR_ADDRESS"],
        num_processes=int(os.environ.get("JAX_NUM_PROCESSES", "1")),
        process_id=int(os.environ.get("JAX_PROCESS_ID", "0")))
  elif os.environ.get("RLMBA_DISTRIBUTED") == "1":
    jax.distributed.initialize()


def make_mesh(num_devices: int | None = None) -> Mesh:
  """A 1-D mesh over ``num_devices`` devices (default: all) with axis ``"data"``."""
  devices = jax.devices()
  n = len(devices) if num_devices in (None, 0, -1) else int(num_devices)
  if n > len(devices) or n < 1:
    raise ValueError(f"asked for a mesh of {n} devices; {len(devices)} are visible")
  kwargs: dict[str, Any] = {"devices": devices[:n]}
  axis_type = getattr(jax.sharding, "AxisType", None)
  if axis_type is not None:
    # Classic GSPMD propagation with explicit constraints where we want them.
    kwargs["axis_types"] = (axis_type.Auto,)
  try:
    return jax.make_mesh((n,), (DATA_AXIS,), **kwargs)
  except TypeError:
    return Mesh(np.asarray(devices[:n]), (DATA_AXIS,))


def make_seed_mesh(num_devices: int | None, num_seeds: int) -> Mesh:
  """A ``(seeds, data)`` mesh over ``num_devices`` devices (default: all) for ``num_seeds``
  seeds: the seeds axis takes the largest divisor of the device count that also divides
  ``num_seeds`` (so every device holds as many seeds), the data axis the rest."""
  devices = jax.devices()
  n = len(devices) if num_devices in (None, 0, -1) else int(num_devices)
  if n > len(devices) or n < 1:
    raise ValueError(f"asked for a mesh of {n} devices; {len(devices)} are visible")
  on_seeds = max(d for d in range(1, n + 1) if n % d == 0 and num_seeds % d == 0)
  shape, names = (on_seeds, n // on_seeds), (SEEDS_AXIS, DATA_AXIS)
  kwargs: dict[str, Any] = {"devices": devices[:n]}
  axis_type = getattr(jax.sharding, "AxisType", None)
  if axis_type is not None:
    kwargs["axis_types"] = (axis_type.Auto, axis_type.Auto)
  try:
    return jax.make_mesh(shape, names, **kwargs)
  except TypeError:
    return Mesh(np.asarray(devices[:n]).reshape(shape), names)


def data_axis_size(mesh: Mesh) -> int:
  """Devices along the data axis (all of them on a 1-D mesh)."""
  return int(dict(mesh.shape).get(DATA_AXIS, mesh.devices.size))


def seeds_axis_size(mesh: Mesh) -> int:
  """Devices along the seeds axis (1 when the mesh has none)."""
  return int(dict(mesh.shape).get(SEEDS_AXIS, 1))


def seeds_sharding(mesh: Mesh) -> NamedSharding:
  """A leading seed axis split over the seeds axis (the rest replicated)."""
  return NamedSharding(mesh, P(SEEDS_AXIS))


def data_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch / pool) axis split over the data axis."""
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def put_replicated(tree: Any, mesh: Mesh) -> Any:
  """Places a host pytree on every device of ``mesh`` (works across hosts too)."""
  sharding = replicated(mesh)
  if jax.process_count() == 1:
    return jax.device_put(tree, sharding)
  return jax.tree.map(
      lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), tree)


def rows_sharding(mesh: Mesh, num_rows: int) -> NamedSharding:
  """Rows (pool examples) split over the data axis when ``num_rows`` divides evenly,
  otherwise replicated (every device then holds all rows)."""
  return data_sharding(mesh) if num_rows % data_axis_size(mesh) == 0 else replicated(mesh)


def put_rows(tree: Any, mesh: Mesh) -> Any:
  """Places host arrays ``[N, ...]`` (a pool, its model outputs) split by rows over
  ``mesh`` (``rows_sharding``), so each device holds ``N / devices`` rows; across hosts each
  process passes the same full arrays and keeps its devices' rows."""
  def put(x):
    x = np.asarray(x)
    sharding = rows_sharding(mesh, x.shape[0]) if x.ndim else replicated(mesh)
    if jax.process_count() == 1:
      return jax.device_put(x, sharding)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])
  return jax.tree.map(put, tree)


def process_zero_first(fn, name: str):
  """Runs ``fn()`` on process 0, then on the other processes (each returns its own result).

  For work that writes shared files once (building a data set's ArrayRecord copy, writing a
  fixture) that every process then reads. One process: just ``fn()``.
  """
  if jax.process_count() == 1:
    return fn()
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  if jax.process_index() == 0:
    result = fn()
    multihost_utils.sync_global_devices(name)
    return result
  multihost_utils.sync_global_devices(name)
  return fn()
