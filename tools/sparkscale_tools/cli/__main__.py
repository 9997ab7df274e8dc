"""`python -m sparkscale_tools.cli`: the same as the `sparkscale` command."""

import sys

from sparkscale_tools.cli import main

sys.exit(main())
