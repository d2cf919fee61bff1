"""`python -m tfp_aline` runs the command line."""

import os
import sys

# `python -m` puts the working folder first on the import path, so a stray .py file there could be
# imported as a task module (`task.class`); the installed `tfp-aline` command does not. Keep it off
# unless the user put it on the path (PYTHONPATH=. adds it again further down).
if sys.path and sys.path[0] in ("", os.getcwd()) and not sys.flags.safe_path:
    sys.path.pop(0)

from tfp_aline.cli.main import main  # noqa: E402

sys.exit(main())
