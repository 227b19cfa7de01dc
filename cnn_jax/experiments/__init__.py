"""Experiments of the lecture's claims (one module each) and the report that collects them."""
