"""Pure train/eval steps, the per-round trainer and metrics."""

from rlmba_jax.train.metrics import (classification_metrics, confusion_matrix,
                                     expected_calibration_error, macro_f1, nll,
                                     per_class_accuracy, top1)
from rlmba_jax.train.trainer import (TrainLog, Trainer, TrainState, make_evidential_loss,
                                     make_loss, make_optimizer, multimodal_cross_entropy)
