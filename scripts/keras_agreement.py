"""Experiment 2: the lecture's Keras code (Keras 3, JAX backend) beside ours, per depth and seed.

``python scripts/keras_agreement.py --flagfile=experiments/keras_agreement.flags``
"""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")  # Keras 3 without TensorFlow

from _experiment import main  # noqa: E402

from cnn_jax.experiments import keras_agreement  # noqa: E402

if __name__ == "__main__":
    main(keras_agreement)
