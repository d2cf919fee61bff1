"""The `tfp-aline` command: argument parsing in `main`, the train and evaluate commands beside it."""

from tfp_aline.cli.main import main

__all__ = ["main"]
