"""Evaluation: exact reference posteriors (and, later, baselines, metrics and reports)."""
