"""Data sets, splits, in-memory pools, grain pipelines and the labelling ledger."""

from rlmba_jax.data.ledger import Ledger, LedgerError
from rlmba_jax.data.loading import load_dataset
from rlmba_jax.data.specs import DatasetSplits, ModalitySpec, MultimodalArrays
from rlmba_jax.data.splits import stratified_split
