"""What the absl entry points in scripts/ share: bad input is one line on stderr, exit 2."""

from __future__ import annotations

import os
import sys
from typing import NoReturn

from absl import app, flags


def usage_error(message: str) -> NoReturn:
    """Prints ``PROG: error: MESSAGE`` on stderr and exits with code 2 (no traceback)."""
    print(f"{os.path.basename(sys.argv[0])}: error: {message}", file=sys.stderr)
    sys.exit(2)


def run(main) -> None:
    """``absl.app.run(main)``, where a flag value that does not parse is a usage error."""

    def parse(argv):
        try:
            return flags.FLAGS(argv)
        except flags.Error as e:
            usage_error(str(e))

    app.run(main, flags_parser=parse)
