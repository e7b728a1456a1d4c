"""The active-learning experiment: config, loop, checkpoints, outputs."""

from rlmba_jax.experiment.config import ConfigError, default_config, validate_config
from rlmba_jax.experiment.loop import WorkdirError, run
