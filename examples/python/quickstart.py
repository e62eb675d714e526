"""The quickstart lives in the package, so that an installed wheel has it too:
`python -m kiln.quickstart` (kiln/quickstart.py). This file runs the same thing from a
checkout: python examples/python/quickstart.py [--model resnet18] [--threads 1] [--out build/]
"""

import sys

from kiln.quickstart import main

if __name__ == "__main__":
    sys.exit(main())
