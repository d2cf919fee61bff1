"""Evaluation: acquisition methods, exact reference posteriors, metrics per step, and the report."""
