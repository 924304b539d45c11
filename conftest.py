"""Strict numerics for every test and doctest.

Dtype promotion is strict and rank promotion raises, so any silent cast or
broadcast in the library (or in a test) fails loudly.
"""

import jax

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")
