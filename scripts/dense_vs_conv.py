"""Experiment 3: the MLP vs the small CNN (parameters, accuracy, time, first-layer weights).

``python scripts/dense_vs_conv.py --flagfile=experiments/dense_vs_conv.flags``
"""

from _experiment import define, main

from cnn_jax.experiments import dense_vs_conv

settings_from_flags = define(dense_vs_conv)  # the whole-configuration check, first in main

if __name__ == "__main__":
    main(dense_vs_conv, settings_from_flags)
