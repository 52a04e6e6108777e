"""``python -m kosmos.ctl``: the same as ``kosmosctl``."""

import sys

from kosmos.ctl import main

sys.exit(main())
