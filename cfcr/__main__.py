"""``python -m cfcr``."""

import sys

from cfcr.cli import main

sys.exit(main())
