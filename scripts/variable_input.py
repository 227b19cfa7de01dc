"""Experiment 9: a global-pooling CNN on larger canvases without retraining; the MLP refuses them.

``python scripts/variable_input.py --flagfile=experiments/variable_input.flags``
"""

from _experiment import main

from cnn_jax.experiments import variable_input

if __name__ == "__main__":
    main(variable_input)
