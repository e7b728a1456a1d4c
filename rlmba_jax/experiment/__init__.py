"""The active-learning experiment: config, loop, checkpoints, outputs.

A run's trained model for new inputs is ``rlmba_jax.inference.load_model``; a simulated
person ``rlmba_jax.person.SimulatedPerson``."""

from rlmba_jax.errors import (EXIT_CODES, CheckpointError, ConfigError, DataError, LabelsError,
                              LabelsNeeded, NonFiniteError, RunError, WorkdirError,
                              WorkdirLockedError)
from rlmba_jax.experiment.config import default_config, validate_config
from rlmba_jax.experiment.loop import run
