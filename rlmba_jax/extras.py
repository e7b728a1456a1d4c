"""Optional dependencies, each behind a pip extra: a feature that needs one that is missing
stops with a message naming the extra to install, not an ImportError.

  pip install 'rlmba_jax[audio]'    librosa + soundfile: recordings (av_digits, items,
                                    Kinetics-Sounds, VGGSound)
  pip install 'rlmba_jax[video]'    PyAV: extracting frames from videos (launch/extract_av.py)
  pip install 'rlmba_jax[data]'     tensorflow-datasets, grain, array_record: the TFDS
                                    builders that write and read ArrayRecord copies (the
                                    paper's data sets, your own folders of items; the
                                    in-memory data sets with data.source="tfds")

The default experiment (mfeat, which reads its packaged CSVs when TFDS is not installed) and
the functional API need none of them.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

EXTRAS = {"librosa": "audio", "soundfile": "audio", "av": "video",
          "tensorflow_datasets": "data", "grain": "data", "array_record": "data"}


class MissingExtraError(RuntimeError):
  """A feature needs a package of an extra that is not installed."""


def require(module: str, needed_for: str) -> ModuleType:
  """``import module``, or a ``MissingExtraError`` naming the extra that provides it."""
  try:
    return importlib.import_module(module)
  except ImportError as e:
    extra = EXTRAS.get(module, module)
    raise MissingExtraError(
        f"{needed_for} needs the Python package {module!r}, which is not installed: "
        f"pip install 'rlmba_jax[{extra}]' (or pip install -e '.[{extra}]' in a checkout)"
        ) from e


def available(module: str) -> bool:
  """Whether ``module`` can be imported, without importing it."""
  try:
    return importlib.util.find_spec(module) is not None
  except (ImportError, ValueError):
    return False


def installed(extra: str) -> bool:
  """Whether every package of ``extra`` (``"data"``, ``"audio"``, ``"video"``) can be
  imported, without importing them."""
  return all(available(m) for m, e in EXTRAS.items() if e == extra)
