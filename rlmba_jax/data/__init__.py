"""Data sets (one registry, ``registry.DATASETS``), splits, in-memory pools and grain
pipelines."""

from rlmba_jax.data.loading import load_dataset
from rlmba_jax.data.specs import DatasetSplits, ModalitySpec, MultimodalArrays
from rlmba_jax.data.splits import stratified_split
