"""Evidential (Dirichlet) maths: statistics, TMC's Dempster-Shafer combination, RL-MBA's
weighted evidence fusion and the evidential loss. Pure functions over arrays."""

from rlmba_jax.fusion.combination import (alpha_from_opinion, conflict, ds_combine,
                                          ds_combine_evidence, ds_combine_many, tmc_fusion,
                                          uniform_weights, weighted_evidence_fusion)
from rlmba_jax.fusion.dirichlet import (EVIDENCE_ACTIVATIONS, MAX_EVIDENCE,
                                        alpha_from_evidence,
                                        belief_and_uncertainty, dirichlet_strength,
                                        dirichlet_variance, evidence_from_logits,
                                        expected_probabilities, mean_dirichlet_variance,
                                        xlogx)
from rlmba_jax.fusion.losses import (annealing_coefficient, evidential_loss,
                                     expected_cross_entropy, kl_to_uniform_dirichlet)
