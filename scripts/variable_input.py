"""Experiment 9: a global-pooling CNN on larger canvases without retraining; the MLP refuses them.

``python scripts/variable_input.py --flagfile=experiments/variable_input.flags``
"""

from _experiment import define, main

from cnn_jax.experiments import variable_input

settings_from_flags = define(variable_input)  # the whole-configuration check, first in main

if __name__ == "__main__":
    main(variable_input, settings_from_flags)
