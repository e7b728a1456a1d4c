"""ml_collections config files (``get_config(arg)``), one per data set and protocol.

They live at the top of the repository, where flax-examples and big_vision users look for
them, and ship inside the wheel as ``rlmba_jax.configs``: ``--config=configs/mfeat.py:paper``
(a file) and ``--config=mfeat:paper`` (the packaged copy) name the same config.
"""
