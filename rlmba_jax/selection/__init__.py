"""Acquisition strategies behind one registry: ``get_strategy(name)(key, pool, budget)``."""

from rlmba_jax.selection import random_sampling as _random_sampling  # registers "random"
from rlmba_jax.selection import uncertainty as _uncertainty  # registers "entropy"
from rlmba_jax.selection.base import (PoolView, Strategy, available_strategies, get_strategy,
                                      register, top_scores)
from rlmba_jax.selection.uncertainty import predictive_entropy
