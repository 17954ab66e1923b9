"""``python -m cytoreg``: the same command line as ``cytoreg``."""
import sys

from cytoreg.cli import main

sys.exit(main())
