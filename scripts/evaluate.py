"""Evaluate a trained run: same as `tfp-aline evaluate` (see --help)."""

import sys

from tfp_aline.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
