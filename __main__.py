"""`python -m kiln` is the `kiln` command."""

import sys

from .compiler.cli import main

sys.exit(main())
