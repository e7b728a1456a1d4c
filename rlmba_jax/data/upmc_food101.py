"""upmc_food101: UPMC Food-101 recipe pages paired with food photos, 101 classes.

The layout users have (the UPMC Food-101 download, as the balanced multimodal AL code reads
it), in ``manual_dir``::

  images/train/{class}/{class}_{n}.jpg     images/test/{class}/{class}_{n}.jpg
  texts_txt/{class}/{class}_{n}.txt        (the recipe page the photo came from)

Records: ``image`` (the jpeg's bytes, decoded and augmented by the input pipeline),
``text`` (the recipe's words after "ingredients", at most 100, space-joined; see
``text.recipe_tokens``), ``label`` (classes in sorted folder order, which is the reference's
alphabetical list), ``_id``, ``is_test`` (the official test split), ``name``
(``{class}/{class}_{n}``). A photo without a text file, a text without the "ingredients"
marker and a jpeg PIL cannot decode stop the build, naming the file, or with
``data.on_error=skip`` are skipped and counted (the reference skips the first two silently).
"""

from __future__ import annotations

import functools
import os
import re
from typing import Iterator

import numpy as np

from rlmba_jax import extras
from rlmba_jax.data import text as text_lib
from rlmba_jax.data import fixtures
from rlmba_jax.data.builders import BuildReport, read_checked_image, record_builder_base
from rlmba_jax.data.specs import DatasetInfo
from rlmba_jax.data.transforms import record_modality_specs

MODALITIES = ("image", "text")
_IMAGE_NAME = re.compile(r"^(?P<stem>\w+?_[\d-]+)\.(jpg|jpeg|png)$", re.IGNORECASE)


def check_manual_dir(manual_dir: str) -> str:
  if not manual_dir:
    raise FileNotFoundError(
        "upmc_food101 reads UPMC Food-101 from data.manual_dir; set --config.data.manual_dir "
        "to the folder holding images/{train,test}/ and texts_txt/")
  for sub in ("images/train", "images/test", "texts_txt"):
    if not os.path.isdir(os.path.join(manual_dir, sub)):
      raise FileNotFoundError(f"upmc_food101: {os.path.join(manual_dir, sub)!r} does not "
                              "exist; data.manual_dir must hold images/train, images/test "
                              "and texts_txt (the UPMC Food-101 layout)")
  return manual_dir


def class_names(manual_dir: str) -> list[str]:
  names = sorted(d for d in os.listdir(os.path.join(manual_dir, "images", "train"))
                 if os.path.isdir(os.path.join(manual_dir, "images", "train", d)))
  if not names:
    raise FileNotFoundError(f"upmc_food101: no class folders in "
                            f"{os.path.join(manual_dir, 'images', 'train')!r}")
  return names


def iter_examples(manual_dir: str, report: BuildReport) -> Iterator[dict]:
  """Every usable (photo, recipe) pair, in a fixed order; problems go to ``report``."""
  check_manual_dir(manual_dir)
  names = class_names(manual_dir)
  index = {n: i for i, n in enumerate(names)}
  next_id = 0
  for split in ("train", "test"):
    root = os.path.join(manual_dir, "images", split)
    for label in sorted(os.listdir(root)):
      folder = os.path.join(root, label)
      if not os.path.isdir(folder):
        continue
      if label not in index:
        report.problem("class folder not in images/train", folder)
        continue
      for file in sorted(os.listdir(folder)):
        path = os.path.join(folder, file)
        match = _IMAGE_NAME.match(file)
        if not match:
          report.problem("unexpected file name", path, "expected {class}_{n}.jpg")
          continue
        stem = match.group("stem")
        text_path = os.path.join(manual_dir, "texts_txt", label, stem + ".txt")
        if not os.path.exists(text_path):
          report.problem("photo without a recipe text", path, f"no {text_path}")
          continue
        try:
          with open(text_path, encoding="utf-8", errors="replace") as f:
            words = text_lib.recipe_tokens(f.read())
        except text_lib.MissingMarkerError:
          report.problem("recipe text without the 'ingredients' marker", text_path)
          continue
        data = read_checked_image(path, report, "corrupt image")
        if data is None:
          continue
        report.kept += 1
        yield {"image": data, "text": " ".join(words), "label": index[label],
               "_id": next_id, "is_test": split == "test", "name": f"{label}/{stem}"}
        next_id += 1


@functools.cache
def builder_class():
  """The TFDS builder class, defined (and registered) on first call: importing this module
  does not import TFDS."""
  tfds = extras.require("tensorflow_datasets", "the UPMC Food-101 TFDS builder")

  class UpmcFood101(record_builder_base()):
    """UPMC Food-101 photos + recipe texts (one split ``train`` with an ``is_test`` flag)."""
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Photos as jpeg bytes; recipe words after 'ingredients'."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Put UPMC Food-101 in manual_dir: images/{train,test}/{class}/*.jpg and "
        "texts_txt/{class}/*.txt.")

    def class_names(self, manual_dir):
      return class_names(check_manual_dir(manual_dir))

    def examples(self, manual_dir, report):
      return iter_examples(manual_dir, report)

    def _info(self):
      return tfds.core.DatasetInfo(
          builder=self,
          description="UPMC Food-101: food photos with the recipe page they came from.",
          features=tfds.features.FeaturesDict({
              "image": tfds.features.Tensor(shape=(), dtype=np.object_),
              "text": tfds.features.Text(),
              "label": tfds.features.Scalar(dtype=np.int64),
              "_id": tfds.features.Scalar(dtype=np.int64),
              "is_test": tfds.features.Scalar(dtype=np.bool_),
              "name": tfds.features.Text(),
          }),
          metadata=tfds.core.MetadataDict(),
          disable_shuffling=True,
          homepage="http://visiir.isir.upmc.fr/")

  return UpmcFood101



INFO = DatasetInfo(
    name="upmc_food101", kind="records", modalities=MODALITIES,
    modality_specs=record_modality_specs, builder_class=builder_class,
    check_manual_dir=check_manual_dir, write_fixture=fixtures.write_food101)
