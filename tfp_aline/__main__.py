"""`python -m tfp_aline` runs the command line."""

import sys

from tfp_aline.cli import main

sys.exit(main())
