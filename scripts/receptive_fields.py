"""Experiment 6: analytic and effective receptive fields against depth.

``python scripts/receptive_fields.py --flagfile=experiments/receptive_fields.flags``
"""

from _experiment import main

from cnn_jax.experiments import receptive_fields

if __name__ == "__main__":
    main(receptive_fields)
