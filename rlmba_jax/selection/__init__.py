"""Acquisition strategies behind one registry: ``get_strategy(name)(key, pool, budget)``.

=================  ==========================================================================
name               what it labels next
=================  ==========================================================================
random             uniform draw
entropy            highest entropy of the fused prediction
margin             smallest gap between the two most likely classes
least_confidence   lowest top-class probability
bald               highest mutual information over MC-dropout passes (BALD)
coreset            k-center greedy from the labelled set on the fused features (CoreSet)
kmeans             nearest example to each of k = budget k-means centroids
badge              k-means++ over gradient embeddings of the fused head (BADGE), factorised
bmmal              BADGE with per-sample modality-contribution scaling (BMMAL)
deepfool           smallest DeepFool perturbation of the fused features (DFAL)
gcnal              GCN labelled-vs-unlabelled graph, then CoreGCN / UncertainGCN
rlmba              RL-MBA: candidates by q = sum_m w_m u_m + beta d, drawn by a learnt policy
=================  ==========================================================================
"""

from rlmba_jax.selection import deepfool as _deepfool
from rlmba_jax.selection import diversity as _diversity
from rlmba_jax.selection import gcn as _gcn
from rlmba_jax.selection import gradient_embedding as _gradient_embedding
from rlmba_jax.selection import random_sampling as _random_sampling
from rlmba_jax.selection import rlmba as _rlmba
from rlmba_jax.selection import uncertainty as _uncertainty
from rlmba_jax.selection.base import (NEEDS, PoolView, Strategy, available_strategies,
                                      check_view, get_strategy, register, strategy_fields,
                                      strategy_needs, top_scores)
from rlmba_jax.selection.deepfool import deepfool_perturbation
from rlmba_jax.selection.diversity import (kcenter_greedy, kmeans_centroids, kmeans_plusplus,
                                           kmeans_select, lloyd_kmeans,
                                           min_squared_distance_to_set, squared_distances)
from rlmba_jax.selection.gcn import (cosine_graph_propagation, dense_cosine_adjacency,
                                     train_labelled_node_gcn)
from rlmba_jax.selection.gradient_embedding import (bmmal_contributions, bmmal_scales,
                                                    gradient_embedding_kmeanspp,
                                                    materialised_gradient_embeddings,
                                                    materialised_kmeanspp,
                                                    pseudo_label_residual)
from rlmba_jax.selection.rlmba import (RoundCandidates, centroid_distance, efda_difficulty,
                                       minmax_normalise, modality_uncertainties,
                                       score_candidates,
                                       weighted_fused_features)
from rlmba_jax.selection.synthetic import shard_pool, synthetic_pool
from rlmba_jax.selection.uncertainty import (bald_mutual_information, least_confidence,
                                             margin_uncertainty, predictive_entropy)
