"""``python -m kdag_runner run|collect``."""

import sys

from kdag_runner.main import main

sys.exit(main())
