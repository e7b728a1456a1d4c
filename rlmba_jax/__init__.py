"""rlmba_jax: modality-balanced, difficulty-aware multimodal active learning in JAX/Flax.

The numerical parts (``fusion``, ``modality``, ``selection``, ``policy``) are pure functions
over arrays; ``models`` holds the Flax modules; ``experiment.run`` runs a whole
active-learning experiment from an ml_collections config.
"""

__version__ = "0.1.0"
