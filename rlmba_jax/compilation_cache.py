"""The persistent XLA compilation cache, on by default.

Every run compiles the same programs (training, prediction, each strategy); JAX can keep
them on disk so the next run, or a resume, loads them instead. ``enable()`` turns the cache
on in a per-user folder, ``$XDG_CACHE_HOME/rlmba_jax/xla`` (``~/.cache/rlmba_jax/xla``),
unless

* ``JAX_COMPILATION_CACHE_DIR`` (or ``jax.config.jax_compilation_cache_dir``) already names
  one: that one is used;
* ``RLMBA_COMPILATION_CACHE=0`` (or ``--nocompilation_cache`` on the command line): off.

Either folder keeps every program, however fast it compiled, unless
``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS`` or the JAX option of that name says otherwise.
"""

from __future__ import annotations

import logging
import os

import jax

logger = logging.getLogger(__name__)

ENV_SWITCH = "RLMBA_COMPILATION_CACHE"
_JAX_MIN_COMPILE_SECS = 1.0  # JAX's default; another value was set by the user and is kept


def default_dir() -> str:
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "rlmba_jax", "xla")


def enable(on: bool = True, folder: str | None = None) -> str | None:
  """Turns the cache on (see the module doc) in ``folder`` when JAX names none (default
  ``default_dir()``); returns its folder, or None when off."""
  if not on or os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
    return None
  path = jax.config.jax_compilation_cache_dir or os.environ.get("JAX_COMPILATION_CACHE_DIR")
  if not path:
    path = folder or default_dir()
    try:
      os.makedirs(path, exist_ok=True)
    except OSError as e:
      logger.warning("compilation cache off: cannot create %s (%s)", path, e)
      return None
    jax.config.update("jax_compilation_cache_dir", path)
  if ("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ
      and jax.config.jax_persistent_cache_min_compile_time_secs == _JAX_MIN_COMPILE_SECS):
    # JAX keeps only programs that took over 1 s to compile; a run has dozens of smaller
    # ones (strategies, prediction, metrics) whose compiling adds up. The same in a folder
    # the user named: naming the folder should not change what is kept.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  return path
