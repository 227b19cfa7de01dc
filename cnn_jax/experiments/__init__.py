"""Experiments: each turns one claim of the lecture into numbers, tables and figures."""
