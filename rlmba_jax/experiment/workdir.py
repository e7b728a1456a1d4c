"""One writer per workdir, and no workdir left behind by a run that never started.

``claim(workdir)`` creates the folder if needed and holds an advisory lock (``flock`` on
``WORKDIR/.lock``, which names the holder) for the run's life. The operating system drops
the lock when its process dies, so a killed run's lock is taken over by the next one; a
second live process is refused with one line and touches nothing. If the run fails before
it has committed anything (no ``config.json`` yet) and the folder was created for it, the
folder is removed, by the process that created it (``os.mkdir`` decides which one did) and
that holds its lock; a refused process never removes anything. ``flock`` works on local
filesystems; on NFS it may not, so there run one process per workdir by hand.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
from typing import Iterator

from rlmba_jax.errors import WorkdirError, WorkdirLockedError


LOCK_NAME = ".lock"


def _acquire(workdir: str):
  path = os.path.join(workdir, LOCK_NAME)
  try:
    handle = open(path, "a+", encoding="utf-8")  # pylint: disable=consider-using-with
  except OSError as e:
    raise WorkdirError(f"cannot write in the workdir {workdir!r} ({e.strerror}); choose a "
                       "writable folder") from None
  try:
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError:
    handle.seek(0)
    holder = handle.read().strip() or "another process"
    handle.close()
    raise WorkdirLockedError(
        f"{workdir} is in use by {holder}; wait for that run to finish (or stop it), then "
        "run again. Nothing was changed.") from None
  handle.seek(0)
  handle.truncate()
  handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
  handle.flush()
  return handle


@contextlib.contextmanager
def claim(workdir: str, *, lock: bool = True) -> Iterator[None]:
  """Creates ``workdir`` if needed and, with ``lock``, holds its lock until the block ends;
  removes a folder it created if the block fails before ``config.json`` exists."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise WorkdirError(f"the workdir {workdir!r} is a file, not a folder; choose another path")
  try:
    os.makedirs(os.path.dirname(os.path.abspath(workdir)), exist_ok=True)
    os.mkdir(workdir)  # atomic: of two processes starting together, one creates it
    created = True
  except FileExistsError:
    created = False
  except OSError as e:
    raise WorkdirError(f"cannot create the workdir {workdir!r} ({e.strerror}); choose a "
                       "writable location") from None
  if created and not lock:
    created = False  # the process that locks (process 0) owns the folder's fate
  # Refused here, a process leaves everything as it is: the lock's holder may have just
  # made the folder (``created`` is then False for this one anyway).
  handle = _acquire(workdir) if lock else None
  try:
    yield
  except BaseException:
    if created and not os.path.exists(os.path.join(workdir, "config.json")):
      handle.close()
      handle = None
      shutil.rmtree(workdir, ignore_errors=True)
    raise
  finally:
    if handle is not None:
      handle.close()


def read_stored_json(path: str):
  """What a workdir's JSON record (``config.json``, ``pretrain.json``) holds; a
  ``WorkdirError`` that changes nothing when it cannot be read."""
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise WorkdirError(f"{path} is unreadable ({e}); nothing was changed. Restore it or "
                       "choose another --workdir.") from e
