"""Build the mock distribution (ticket 001) from the feature table: same as `tfp-aline generate-mock`."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tfp_aline.cli import main  # noqa: E402

if __name__ == "__main__":
    os.chdir(ROOT) if not os.path.exists("data") else None
    sys.exit(main(["generate-mock", *sys.argv[1:]]))
