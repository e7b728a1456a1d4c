"""What every TFDS builder of the library shares: where prepared copies live, what a builder
does with a bad source file (stop, the default, or skip it, and count either way), and the
index a builder stores so the loader never scans records."""

from __future__ import annotations

import collections
import contextlib
import contextvars
import functools
import hashlib
import io
import json
import logging
import os

from rlmba_jax import extras
from rlmba_jax.config_choices import ON_ERROR


logger = logging.getLogger(__name__)


_SHOW_BUILD_PROGRESS = contextvars.ContextVar("rlmba_jax_build_progress", default=False)


@contextlib.contextmanager
def build_progress(show: bool):
  """Shows TFDS's own bars (generating and shuffling examples) for a data set built inside
  this block; outside one they stay off."""
  token = _SHOW_BUILD_PROGRESS.set(bool(show))
  try:
    yield
  finally:
    _SHOW_BUILD_PROGRESS.reset(token)


def set_tfds_progress(tfds) -> None:
  """Turns TFDS's progress bars on or off as the enclosing ``build_progress`` says."""
  if _SHOW_BUILD_PROGRESS.get():
    tfds.enable_progress_bar()
  else:
    tfds.disable_progress_bar()


def default_data_dir() -> str:
  """TFDS's data_dir when ``config.data.data_dir`` is empty: $TFDS_DATA_DIR, or
  ~/tensorflow_datasets."""
  return os.environ.get("TFDS_DATA_DIR", os.path.join(os.path.expanduser("~"),
                                                      "tensorflow_datasets"))


SOURCE_RECORD = "rlmba_source.json"
_SMALL_SOURCE = 64 << 20  # bytes: a source this small is hashed whole
_SAMPLED_FILES = 256  # files hashed whole in a larger source (spread over the sorted list)


def source_fingerprint(folder: str) -> str:
  """sha256 of a source folder: every file's relative path and size, and the content of
  every file (a source up to 64 MiB) or of 256 files spread over the sorted list."""
  files = []
  for root, dirs, names in os.walk(folder):
    dirs.sort()
    for name in sorted(names):
      path = os.path.join(root, name)
      files.append((os.path.relpath(path, folder), os.path.getsize(path)))
  total = sum(size for _, size in files)
  if total <= _SMALL_SOURCE or len(files) <= _SAMPLED_FILES:
    hashed = set(range(len(files)))
  else:
    hashed = {round(i * (len(files) - 1) / (_SAMPLED_FILES - 1)) for i in range(_SAMPLED_FILES)}
  digest = hashlib.sha256()
  for i, (rel, size) in enumerate(files):
    digest.update(f"{rel}|{size}|".encode())
    if i in hashed:
      with open(os.path.join(folder, rel), "rb") as f:
        digest.update(hashlib.sha256(f.read()).digest())
  return digest.hexdigest()


def check_source(prepared_dir: str, name: str, source: str, *, built_now: bool) -> None:
  """Records which source folder (path and fingerprint) a prepared copy was built from, or
  checks that the source asked for now is that one: a prepared copy is keyed by name and
  version only, so without this a changed or misspelt ``data.manual_dir`` would be silently
  ignored. Raises ``ValueError`` naming both folders and what to do."""
  path = os.path.join(prepared_dir, SOURCE_RECORD)
  now = {"source": os.path.abspath(source), "fingerprint": source_fingerprint(source)}
  if built_now or not os.path.exists(path):
    if not built_now:
      logger.warning("%s: the prepared copy in %s has no record of its source (made by an "
                     "earlier version); recording %s as its source", name, prepared_dir,
                     now["source"])
    with open(path, "w", encoding="utf-8") as f:
      json.dump(now, f)
    return
  with open(path, encoding="utf-8") as f:
    then = json.load(f)
  if then.get("fingerprint") != now["fingerprint"]:
    same = then.get("source") == now["source"]
    raise ValueError(
        f"{name}: the prepared copy in {prepared_dir} was built from "
        f"{then.get('source')!r}{', whose files have changed since' if same else ''}; "
        f"data.manual_dir asks for {now['source']!r}. Set config.data.data_dir to another "
        f"folder to build a copy of it there, or delete {prepared_dir} to rebuild it here.")


def manual_dir_of(dl_manager) -> str:
  """The folder a builder reads its source files from."""
  return os.fspath(dl_manager.manual_dir)


class SourceFileError(ValueError):
  """A source file (image, text, audio, clip folder) that cannot be used; names the file."""


class BuildReport:
  """Collects skipped source files by reason; ``problem()`` raises or records per ``on_error``."""

  def __init__(self, dataset: str, on_error: str):
    if on_error not in ON_ERROR:
      raise ValueError(f"data.on_error={on_error!r}; choose from {ON_ERROR}")
    self.dataset, self.on_error = dataset, on_error
    self.skipped: dict[str, list[str]] = collections.defaultdict(list)
    self.kept = 0

  def problem(self, reason: str, path: str, detail: str = "") -> None:
    """Stops the build (``on_error='stop'``) or records ``path`` as skipped."""
    message = f"{self.dataset}: {reason}: {path}" + (f" ({detail})" if detail else "")
    if self.on_error == "stop":
      raise SourceFileError(
          message + ". Fix or remove the file, or set --config.data.on_error=skip to build "
          "without it (skipped files are counted and listed in the log).")
    logger.warning("skipping %s", message)
    self.skipped[reason].append(path)

  def summary(self) -> dict[str, int]:
    out = {"kept": self.kept}
    out.update({f"skipped: {k}": len(v) for k, v in sorted(self.skipped.items())})
    return out

  def log(self) -> None:
    logger.info("%s build: %s", self.dataset,
                 ", ".join(f"{k} {v}" for k, v in self.summary().items()))


def indexed_examples(metadata, report: BuildReport, class_names, examples):
  """Yields ``(_id, example)`` for a TFDS builder and, once every example is out, stores in
  ``metadata`` the index the loader reads instead of scanning records (records are written in
  id order): ``class_names``, ``labels``, ``is_test`` and the ``build_report`` counts."""
  metadata["class_names"] = list(class_names)
  labels, is_test = [], []
  for example in examples:
    labels.append(int(example["label"]))
    is_test.append(bool(example["is_test"]))
    yield example["_id"], example
  report.log()
  metadata["labels"] = labels
  metadata["is_test"] = is_test
  metadata["build_report"] = report.summary()


@functools.cache
def record_builder_base() -> type:
  """The base class of the record data sets' TFDS builders (imports TFDS on first call).

  One ``train`` split generated from ``manual_dir`` with the bad-file policy ``on_error``;
  after the last example, ``indexed_examples`` stores the index the loader reads. A subclass
  sets ``VERSION``, ``_info`` and two hooks: ``class_names(manual_dir)`` (checks the folder
  first) and ``examples(manual_dir, report)`` (dicts with ``_id``, ``label``, ``is_test``).
  """
  tfds = extras.require("tensorflow_datasets", "the record data sets' TFDS builders")

  class RecordBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):

    def __init__(self, *, on_error: str = "stop", **kwargs):
      self._on_error = on_error
      super().__init__(**kwargs)

    def class_names(self, manual_dir: str) -> list[str]:
      raise NotImplementedError

    def examples(self, manual_dir: str, report: BuildReport):
      raise NotImplementedError

    def _split_generators(self, dl_manager):
      return {"train": self._generate_examples(manual_dir_of(dl_manager))}

    def _generate_examples(self, manual_dir):
      report = BuildReport(self.name, self._on_error)
      yield from indexed_examples(self.info.metadata, report, self.class_names(manual_dir),
                                  self.examples(manual_dir, report))

  return RecordBuilder


def check_image(data: bytes) -> None:
  """Raises ``ValueError`` when PIL cannot fully decode the image."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  try:
    with Image.open(io.BytesIO(data)) as im:
      im.convert("RGB").load()
  except Exception as e:  # pylint: disable=broad-except  (PIL raises many types)
    raise ValueError(f"cannot decode the image ({type(e).__name__}: {e})") from e


def read_checked_image(path: str, report: "BuildReport", problem: str) -> bytes | None:
  """The file's bytes when they decode as an image; else None, reported as ``problem``."""
  with open(path, "rb") as f:
    data = f.read()
  try:
    check_image(data)
  except ValueError as e:
    report.problem(problem, path, str(e))
    return None
  return data
