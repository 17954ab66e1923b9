"""``python -m cytoreg.cli``: the same command line as ``cytoreg``."""
import sys

from cytoreg.cli import main

sys.exit(main())
