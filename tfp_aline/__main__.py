"""`python -m tfp_aline` runs the command line."""

import sys

from tfp_aline.cli.main import main

sys.exit(main())
