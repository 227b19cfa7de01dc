"""Experiment 5: one architecture as conv and as locally connected (params, accuracy, shifts).

``python scripts/parameter_sharing.py --flagfile=experiments/parameter_sharing.flags``
"""

from _experiment import main

from cnn_jax.experiments import parameter_sharing

if __name__ == "__main__":
    main(parameter_sharing)
