"""`python -m rlcyclegan.cli ...` is the same as `rlcyclegan ...`."""

import sys

from rlcyclegan.cli import main

sys.exit(main())
