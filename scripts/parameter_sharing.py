"""Experiment 5: one architecture as conv and as locally connected (params, accuracy, shifts).

``python scripts/parameter_sharing.py --flagfile=experiments/parameter_sharing.flags``
"""

from _experiment import define, main

from cnn_jax.experiments import parameter_sharing

settings_from_flags = define(parameter_sharing)  # the whole-configuration check, first in main

if __name__ == "__main__":
    main(parameter_sharing, settings_from_flags)
