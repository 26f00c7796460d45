"""`python -m devstack` is `python -m devstack.run`."""
import sys

from devstack.run import main

sys.exit(main())
