"""Experiment 6: analytic and effective receptive fields against depth.

``python scripts/receptive_fields.py --flagfile=experiments/receptive_fields.flags``
"""

from _experiment import define, main

from cnn_jax.experiments import receptive_fields

settings_from_flags = define(receptive_fields)  # the whole-configuration check, first in main

if __name__ == "__main__":
    main(receptive_fields, settings_from_flags)
