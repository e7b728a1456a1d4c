"""Pure train/eval steps, the per-round trainer and metrics."""

from rlmba_jax.train.metrics import (classification_metrics, expected_calibration_error,
                                     nll, top1)
from rlmba_jax.train.trainer import (TrainLog, Trainer, TrainState, make_optimizer,
                                     multimodal_cross_entropy)
