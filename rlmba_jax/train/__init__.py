"""Pure train/eval steps, the per-round trainer and metrics."""

from rlmba_jax.train.metrics import (classification_metrics, confusion_matrix,
                                     expected_calibration_error, macro_f1, nll,
                                     per_class_accuracy, top1)
from rlmba_jax.train.losses import make_loss, multimodal_cross_entropy
from rlmba_jax.train.optimizers import make_optimizer
from rlmba_jax.train.trainer import TrainLog, Trainer, TrainState
