"""Experiment 4: parameters and connections of dense, locally connected and conv layers.

``python scripts/sparse_interactions.py --flagfile=experiments/sparse_interactions.flags``
"""

from _experiment import define, main

from cnn_jax.experiments import sparse_interactions

settings_from_flags = define(sparse_interactions)  # the whole-configuration check, first in main

if __name__ == "__main__":
    main(sparse_interactions, settings_from_flags)
