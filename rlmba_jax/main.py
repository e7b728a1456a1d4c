r"""Runs an active-learning experiment.

  python -m rlmba_jax.main --workdir=/tmp/rlmba/mfeat
  python -m rlmba_jax.main --config=configs/mfeat.py --workdir=/tmp/rlmba/entropy \
      --config.al.strategy=entropy --config.al.rounds=4 --config.seed=3
  rlmba-jax --config=mfeat:runlocal --workdir=/tmp/rlmba/tiny   # a packaged config by name
  rlmba-jax --config=mfeat:paper --seeds=0-49 --workdir=/tmp/rlmba/margin50 \
      --config.al.strategy=margin     # 50 seeds in lockstep -> WORKDIR/seed_0000 ... 0049

Re-running a command on the same workdir continues the run from its last finished round.
A run that stops prints one line saying why and what to do, and exits with the code of
``rlmba_jax.errors.EXIT_CODES`` (docs/experiments.md, "When a run stops"); ``--verbosity=1`` or
``RLMBA_TRACEBACK=1`` shows the traceback too.
"""

import errno
import os
import signal
import sys


class _Interrupts:
  """Ctrl-C and SIGTERM, from the first line of the process.

  While the program starts (imports, flags, the config) a signal is only noted: an
  exception raised inside an import can be swallowed (JAX's garbage-collection callback
  prints "Exception ignored" and the run went on) or crash a half-initialised extension.
  ``live()`` ends a noted start-up interrupt with one line and exit code 130; after it a
  signal raises ``KeyboardInterrupt`` at once, and ``check`` (called after every durable
  step of a round) raises it again if one was swallowed on the way. A second signal during
  start-up ends the process at once.
  """

  def __init__(self):
    self.count, self.is_live = 0, False

  def __call__(self, signum, frame) -> None:
    del signum, frame
    self.count += 1
    if self.is_live:
      raise KeyboardInterrupt
    if self.count > 1:
      os.write(2, b"interrupted while starting; nothing was written\n")
      os._exit(130)  # pylint: disable=protected-access

  def live(self) -> None:
    self.is_live = True
    if self.count:
      _stop(130, "interrupted while starting; nothing was written")

  def check(self, *unused) -> None:
    if self.count:
      raise KeyboardInterrupt


_INTERRUPTS = _Interrupts()
signal.signal(signal.SIGINT, _INTERRUPTS)
signal.signal(signal.SIGTERM, _INTERRUPTS)  # a stopped job ends like Ctrl-C (exit 130)

from absl import app  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position
from ml_collections import config_flags  # pylint: disable=g-import-not-at-top,wrong-import-position

from rlmba_jax import config_names  # pylint: disable=g-import-not-at-top,wrong-import-position
from rlmba_jax import parallel  # pylint: disable=g-import-not-at-top,wrong-import-position


def _default_config_path() -> str:
  local = os.path.join("configs", "mfeat.py")
  if os.path.exists(local):
    return local
  return config_names.packaged_configs().get(
      "mfeat", os.path.join(os.path.dirname(__file__), "experiment", "config.py"))


_BAD_CONFIG = 2  # errors.ConfigError.exit_code (errors is imported after flag parsing)


def _stop(code: int, message: str) -> None:
  """One line on stderr and the exit code."""
  print(message, file=sys.stderr)
  sys.exit(code)


def _bad_override(e: Exception) -> None:
  detail = str(e).strip("'\"").replace("\\n", " ").replace("\n", " ").replace("\\'", "'")
  given = [a for a in sys.argv[1:] if a.startswith("--config")]
  _stop(_BAD_CONFIG, f"error in the config ({' '.join(given) or 'the default'}): {detail}. "
        "The keys and their defaults are in rlmba_jax/experiment/config.py.")


def _show_traceback() -> bool:
  return flags.FLAGS.verbosity >= 1 or os.environ.get("RLMBA_TRACEBACK") == "1"


try:
  config_names.resolve_config_names(sys.argv)
except ValueError as _e:
  _stop(_BAD_CONFIG, str(_e))
try:  # config_flags reads the --config.* overrides from sys.argv right here
  _CONFIG = config_flags.DEFINE_config_file(
      "config", _default_config_path(), "Config file (get_config(arg) -> ConfigDict).",
      lock_config=True)
except (AttributeError, KeyError, TypeError, ValueError) as _e:
  _bad_override(_e)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder; an existing run is continued.")
flags.DEFINE_bool("config_help", False, "Print every config key (--config.KEY=VALUE) with its "
                  "default and meaning, then exit.")
_COMPILATION_CACHE = flags.DEFINE_bool(
    "compilation_cache", True, "Keep compiled programs in ~/.cache/rlmba_jax/xla (or "
    "$JAX_COMPILATION_CACHE_DIR) so later runs and resumes skip compiling; "
    "--nocompilation_cache or RLMBA_COMPILATION_CACHE=0 turns it off.")
_SEEDS = flags.DEFINE_string(
    "seeds", None, "Run these seeds of the config in lockstep (0-49, or 0,3,7): each round "
    "step is one program over a seed axis, and each seed's outputs go to "
    "WORKDIR/seed_NNNN/ as a single run's would; config.seed is then not read.")
_VMAP_WIDTH = flags.DEFINE_integer(
    "vmap_width", None, "With --seeds: seeds vectorised together inside a program. 1: one "
    "after another (bit-identical to single runs; the default on a CPU); 0: all (the "
    "default on a GPU or TPU; last-bit differences from single runs).")
_CLOSE_ROUND = flags.DEFINE_bool(
    "close_round", False, "With config.al.oracle='person': end the round that waits for "
    "answers with those given so far (the unanswered items go back to the pool).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not _COMPILATION_CACHE.value:
    os.environ["RLMBA_COMPILATION_CACHE"] = "0"
  parallel.initialize_distributed()
  from rlmba_jax import errors  # pylint: disable=g-import-not-at-top
  from rlmba_jax.experiment import run
  from rlmba_jax.experiment.logs import configure_logging  # pylint: disable=g-import-not-at-top
  from rlmba_jax.experiment.summary import finished_line  # pylint: disable=g-import-not-at-top
  configure_logging()
  _INTERRUPTS.live()
  try:
    if _VMAP_WIDTH.value is not None and _SEEDS.value is None:
      raise errors.ConfigError("--vmap_width applies to a seed-batched run; give --seeds")
    summary = run(_CONFIG.value, _WORKDIR.value, close_round=_CLOSE_ROUND.value,
                  seeds=_SEEDS.value, vmap_width=_VMAP_WIDTH.value,
                  phase_callback=_INTERRUPTS.check)
  except (errors.ConfigError, errors.RunError) as e:
    if _show_traceback():
      raise
    _stop(e.exit_code, f"{type(e).__name__}: {e}")
  except OSError as e:
    if e.errno not in (errno.ENOSPC, errno.EDQUOT) or _show_traceback():
      raise
    _stop(9, f"the disk is full ({e.strerror}: {e.filename or 'a file of the run'}); what "
          "was committed is kept: free space and run the same command")
  except KeyboardInterrupt:
    if _show_traceback():
      raise
    _stop(130, "interrupted: what was committed is kept; run the same command to continue "
          "from the last finished round")
  print(finished_line(summary, _WORKDIR.value))


def _parse_flags(argv):
  """absl's parser, with config-override mistakes reported in one line, not a traceback."""
  try:
    rest = flags.FLAGS(argv)
  except SyntaxError as e:
    _stop(_BAD_CONFIG, config_names.syntax_error_line(e))
  except flags.Error as e:
    _stop(_BAD_CONFIG, f"FATAL Flags parsing error: {e}\nPass --helpshort or --helpfull for "
          "help.")
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    _bad_override(e)
  problem = config_names.config_file_problem(_CONFIG.value,
                                             flags.FLAGS["config"].config_filename)
  if problem:
    _stop(_BAD_CONFIG, problem)
  return rest


_KEY_FLAGS = ("config", "workdir", "seeds", "vmap_width", "config_help",
              "compilation_cache", "close_round")


def entry_point():
  if "--config_help" in sys.argv[1:]:
    from rlmba_jax.experiment.config import describe_config  # pylint: disable=g-import-not-at-top
    print("Config keys (set with --config.KEY=VALUE), their defaults and what they mean:\n")
    print(describe_config())
    sys.exit(0)
  flags.mark_flag_as_required("workdir")
  for name in _KEY_FLAGS:  # --help lists them (absl shows the main script's key flags)
    flags.FLAGS.register_key_flag_for_module(sys.argv[0], flags.FLAGS[name])
  app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
  entry_point()
