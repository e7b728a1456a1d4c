"""Modality contributions (top-1 gap, exact Shapley), AMCB weights and the balance score."""

from rlmba_jax.modality.balance import modality_balance
from rlmba_jax.modality.coalitions import coalition_probabilities, true_class_values
from rlmba_jax.modality.contributions import (coalition_masks, shapley_values,
                                              shapley_weights, top1_gap)
from rlmba_jax.modality.weights import (CONTRIBUTIONS, FAVOUR, ModalityWeightState, amcb_init,
                                        amcb_update, amcb_weights)
