"""Experiment 4: parameters and connections of dense, locally connected and conv layers.

``python scripts/sparse_interactions.py --flagfile=experiments/sparse_interactions.flags``
"""

from _experiment import main

from cnn_jax.experiments import sparse_interactions

if __name__ == "__main__":
    main(sparse_interactions)
