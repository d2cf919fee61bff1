"""Train an ALINE model: same as `tfp-aline train` (see --help)."""

import sys

from tfp_aline.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
