"""Experiment 2: the lecture's Keras code (Keras 3, JAX backend) beside ours, per depth and seed.

``python scripts/keras_agreement.py --flagfile=experiments/keras_agreement.flags``
"""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")  # Keras 3 without TensorFlow

from _experiment import define, main  # noqa: E402

from cnn_jax.experiments import keras_agreement  # noqa: E402

settings_from_flags = define(keras_agreement)  # the whole-configuration check, first in main

if __name__ == "__main__":
    main(keras_agreement, settings_from_flags)
