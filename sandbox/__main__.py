"""``python -m sandbox [both|payment|bank]``: run the sandbox services (see sandbox.cli)."""

import sys

from sandbox.cli import main

if __name__ == "__main__":
    sys.exit(main())
