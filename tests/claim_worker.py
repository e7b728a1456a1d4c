"""The child of test_faults' two-process claim race (a module of its own, light to import
in the forkserver that starts the children)."""

import os
import time

from rlmba_jax.errors import WorkdirLockedError
from rlmba_jax.experiment.workdir import claim


def claim_and_hold(workdir, barrier, results):
  barrier.wait()
  try:
    with claim(workdir):
      time.sleep(0.3)  # the other process is refused meanwhile
      present = os.path.exists(os.path.join(workdir, ".lock"))
      open(os.path.join(workdir, "config.json"), "w").write("{}")
      results.put("held, lock present" if present else "held, lock GONE")
  except WorkdirLockedError:
    results.put("refused")
