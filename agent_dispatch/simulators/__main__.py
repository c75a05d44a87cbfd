import sys

from agent_dispatch.simulators.cli import main

sys.exit(main())
