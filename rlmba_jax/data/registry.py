"""Every data set the loader knows, by name: one ``DatasetInfo`` each.

Adding a data set: write its module (the builder, its modality specs, a manual_dir check;
see ``av_digits.py`` for an in-memory one, ``upmc_food101.py`` for a record one) ending in an
``INFO = DatasetInfo(...)``, and add that ``INFO`` to ``DATASETS`` below. Nothing else in
the library names a data set.
"""

from __future__ import annotations

from rlmba_jax.data import arrays, av_clips, av_digits, items, uci_mfeat, upmc_food101
from rlmba_jax.data.specs import DatasetInfo, ModalitySpec, parse_modalities

DATASETS: dict[str, DatasetInfo] = {info.name: info for info in (
    uci_mfeat.INFO,
    av_digits.INFO,
    upmc_food101.INFO,
    av_clips.KINETICS_SOUNDS,
    av_clips.VGGSOUND,
    arrays.INFO,
    items.INFO,
)}


def dataset_info(name: str) -> DatasetInfo:
  """The registered data set ``name``; a ValueError naming the known ones otherwise."""
  if name not in DATASETS:
    raise ValueError(f"config.data.name={name!r} is not a known data set; choose from "
                     f"{', '.join(DATASETS)}")
  return DATASETS[name]


def modality_specs(data_cfg) -> tuple[ModalitySpec, ...]:
  """The specs of the modalities ``config.data.modalities`` names, in that order (every
  modality of the data set when it is empty)."""
  info = dataset_info(data_cfg.name)
  names = (parse_modalities(data_cfg.modalities) if str(data_cfg.modalities).strip()
           else info.modalities)
  unknown = [n for n in names if n not in info.modalities]
  if unknown:
    raise ValueError(f"{info.name} has no modality {unknown}; choose from {info.modalities}")
  return info.modality_specs(data_cfg, names)
