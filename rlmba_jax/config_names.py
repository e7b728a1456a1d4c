"""Config files by name: ``--config=mfeat:runlocal`` is the packaged ``configs/mfeat.py``.

The repository's ``configs/`` folder ships inside the wheel as ``rlmba_jax.configs``, so an
installed ``rlmba-jax`` finds its configs from any folder. No heavy imports here: the
command line resolves names before absl parses the flags.
"""

from __future__ import annotations

import importlib.resources
import os
import pathlib
import sys


def packaged_configs() -> dict[str, str]:
  """name -> path of each config shipped as ``rlmba_jax.configs``."""
  try:
    root = importlib.resources.files("rlmba_jax.configs")
  except ModuleNotFoundError:  # a checkout on sys.path without an install
    root = pathlib.Path(__file__).resolve().parent.parent / "configs"
  return {f.name[:-3]: str(f) for f in root.iterdir()
          if f.name.endswith(".py") and not f.name.startswith("_")}


def default_config(name: str) -> str:
  """``configs/<name>.py`` in the working folder (a checkout), else the packaged file."""
  local = os.path.join("configs", f"{name}.py")
  return local if os.path.exists(local) else packaged_configs()[name]


def resolve_or_exit(argv: list[str]) -> None:
  """``resolve_config_names``; a name that is neither a file nor a packaged config ends the
  command with that one line (exit code 2)."""
  try:
    resolve_config_names(argv)
  except ValueError as e:
    print(f"{os.path.basename(argv[0])}: {e}", file=sys.stderr)
    sys.exit(2)


def resolve_config_names(argv: list[str]) -> None:
  """Rewrites ``--config=NAME[:ARG]`` (or ``--config NAME[:ARG]``) in ``argv`` to the
  packaged file when NAME is not a path; a ValueError names the packaged configs when NAME
  is neither."""
  for i, a in enumerate(argv):
    if a.startswith("--config="):
      value, inline = a[len("--config="):], True
    elif a == "--config" and i + 1 < len(argv):
      value, inline = argv[i + 1], False
    else:
      continue
    name, sep, arg = value.partition(":")
    if os.path.exists(name) or os.sep in name or name.endswith(".py"):
      continue
    configs = packaged_configs()
    if name not in configs:
      raise ValueError(f"--config={value}: {name!r} is neither a config file nor a packaged "
                       f"config ({', '.join(sorted(configs))})")
    resolved = configs[name] + sep + arg
    if inline:
      argv[i] = "--config=" + resolved
    else:
      argv[i + 1] = resolved


def config_file_problem(config, value: str) -> str | None:
  """One line saying why the config file of ``--config=value`` could not be loaded, or None.

  ml_collections defers a file it cannot read: ``config`` is then a stand-in whose every
  attribute raises ``OSError``.
  """
  try:
    config.to_dict()
  except OSError as e:
    reason = str(e).strip().splitlines()[-1].strip()
    return (f"--config={value}: cannot read the config file ({reason}); give a config file "
            f"or a packaged config ({', '.join(sorted(packaged_configs()))})")
  return None


def syntax_error_line(error: SyntaxError) -> str:
  """The config file does not parse: where and why, in one line."""
  return (f"--config: the config file {error.filename} does not parse: {error.msg} "
          f"(line {error.lineno})")
