"""cnn-jax: locality, weight sharing and equivariance in convolutional networks, in JAX/Flax."""

__version__ = "0.1.0"
