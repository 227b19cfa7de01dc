"""Experiment 3: the MLP vs the small CNN (parameters, accuracy, time, first-layer weights).

``python scripts/dense_vs_conv.py --flagfile=experiments/dense_vs_conv.flags``
"""

from _experiment import main

from cnn_jax.experiments import dense_vs_conv

if __name__ == "__main__":
    main(dense_vs_conv)
