"""The RL-MBA selection policy: Plackett–Luce over candidates, trained with REINFORCE."""

from rlmba_jax.policy.network import CandidatePolicy
from rlmba_jax.policy.plackett_luce import (first_draw_entropy, gumbel_top_k,
                                            plackett_luce_log_prob, sequential_plackett_luce)
from rlmba_jax.policy.reinforce import (PolicyState, Transition, UpdateInfo, reinforce_init,
                                        reinforce_loss, reinforce_update)
from rlmba_jax.policy.agent import (REWARDS, RLMBAAgent, ReferenceRunError,
                                    load_reference_curves, record_state)
