"""Build the mock distribution from the feature table: same as `tfp-aline generate-mock`."""

import os
import sys

from tfp_aline.cli.main import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

if __name__ == "__main__":
    os.chdir(ROOT) if not os.path.exists("data") else None
    sys.exit(main(["generate-mock", *sys.argv[1:]]))
