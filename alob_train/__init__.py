"""ALOB model, training engine and evaluation."""
