"""Experiment 10: activation maps of a trained CNN and of Sobel filters; conv vs correlation.

``python scripts/activation_maps.py --flagfile=experiments/activation_maps.flags``
"""

from _experiment import define, main

from cnn_jax.experiments import activation_maps

settings_from_flags = define(activation_maps)  # the whole-configuration check, first in main

if __name__ == "__main__":
    main(activation_maps, settings_from_flags)
