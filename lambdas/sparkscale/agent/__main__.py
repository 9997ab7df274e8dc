"""`python3 -m sparkscale.agent --port 8125 --cluster-id j-… --interval-s 60`."""

import sys

from sparkscale.agent.cli import main

sys.exit(main())
