"""The errors a run stops on, each with the exit code ``rlmba-jax`` returns for it.

Every one carries a message that names the problem and what to do; ``main.py`` prints that
one line (a traceback only with ``--verbosity=1`` or ``RLMBA_TRACEBACK=1``) and exits with
the code. A run that stops on any of them has lost nothing it had committed: the ledger and
the latest checkpoint are as they were, and the same command continues once the cause is
fixed.
"""

from __future__ import annotations


# Exit codes (docs/experiments.md, "When a run stops").
EXIT_CODES = {
    0: "finished",
    1: "an unexpected error (a bug): the traceback is printed",
    2: "a bad config, flag or config file",
    3: "queries written, waiting for a person's labels (al.oracle='person'): answer them "
       "and run the same command",
    4: "the workdir cannot be used as it stands (another config, an edited or inconsistent "
       "ledger, an answers file with a bad line, a path that is not a writable folder)",
    5: "another process is running in the workdir",
    6: "bad data: a missing or corrupt source file, NaN inputs, a manual_dir that is not the "
       "one the prepared copy was built from",
    7: "a checkpoint that cannot be read or fails its checksum",
    8: "a NaN or infinity in training or in the model's outputs",
    9: "the disk is full (or over quota): free space and run the same command",
    130: "interrupted (Ctrl-C or SIGTERM): run the same command to continue",
}


class ConfigError(ValueError):
  """A config value, combination or config file that cannot run."""
  exit_code = 2


class RunError(RuntimeError):
  """Base of the errors a run stops on (besides ``ConfigError``)."""
  exit_code = 1


class WorkdirError(RunError):
  """A workdir, a ledger or a reference run that this config cannot use as it stands."""
  exit_code = 4


class WorkdirLockedError(WorkdirError):
  """Another live process holds the workdir's lock."""
  exit_code = 5


class DataError(RunError):
  """The data set cannot be read as configured (source files, manual_dir, NaN inputs)."""
  exit_code = 6


class CheckpointError(WorkdirError):
  """A checkpoint that cannot be restored, or whose arrays fail their checksum."""
  exit_code = 7


class NonFiniteError(RunError):
  """A NaN or infinity in a round's loss, gradients or outputs."""
  exit_code = 8


class LabelsNeeded(RunError):
  """The run waits for a person's answers (the round's queries are written; nothing is
  lost): answer them and run the same command."""
  exit_code = 3


class LabelsError(WorkdirError):
  """An answers file that cannot be ingested as it stands (the message names the file and
  line); nothing was changed."""
  exit_code = 4
