"""Console logging for command-line entry points."""

import logging as std_logging

from absl import logging


def configure_logging() -> None:
  """Our progress lines at INFO; libraries (Orbax logs every file it writes) at WARNING."""
  logging.set_verbosity(logging.WARNING)
  std_logging.getLogger("rlmba_jax").setLevel(std_logging.INFO)
