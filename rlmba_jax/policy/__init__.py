"""The RL-MBA selection policy: Plackett–Luce over candidates, trained with REINFORCE, online
in a run (``agent``) or beforehand on simulated episodes (``episodes``, ``pretraining``)."""

from rlmba_jax.policy.network import CandidatePolicy
from rlmba_jax.policy.plackett_luce import (first_draw_entropy, gumbel_top_k,
                                            plackett_luce_log_prob, sequential_plackett_luce)
from rlmba_jax.policy.reinforce import (PolicyState, Transition, UpdateInfo, reinforce_init,
                                        reinforce_loss, reinforce_state, reinforce_update)
from rlmba_jax.policy.inputs import (POLICY_INPUTS, input_dims, invariant_candidate_features,
                                     invariant_round_state)
from rlmba_jax.policy.agent import (REWARDS, RLMBAAgent, ReferenceRunError,
                                    load_reference_curves, record_state)
from rlmba_jax.policy.episodes import (EpisodeOutcome, EpisodeSource, EpisodeSpec,
                                       episode_source, simulate_episode, simulate_episodes)
from rlmba_jax.policy.pretraining import (PretrainState, pretrain_init, pretrain_loss,
                                          pretrain_step)
