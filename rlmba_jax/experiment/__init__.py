"""The active-learning experiment: config, loop, checkpoints, outputs."""

from rlmba_jax.experiment.config import default_config, validate_config
from rlmba_jax.experiment.errors import (EXIT_CODES, CheckpointError, ConfigError, DataError,
                                         LabelsError, LabelsNeeded, NonFiniteError, RunError,
                                         WorkdirError, WorkdirLockedError)
from rlmba_jax.experiment.loop import run
from rlmba_jax.experiment.model import TrainedModel, load_model
from rlmba_jax.experiment.oracle import SimulatedPerson
