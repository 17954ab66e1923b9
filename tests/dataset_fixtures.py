"""The dataset layout fixtures live in the package (``cytoreg.fixtures``, ``cytoreg data fixtures
DIR``); this module keeps the tests' imports working."""
from cytoreg.fixtures import *  # noqa: F401,F403
from cytoreg.fixtures import (BMC_N, HICERVIX_N, HICERVIX_ROWS, MLL23_FOLDERS, NEJM_CASES, PBC,  # noqa: F401
                              build_acevedo, build_all, build_bmc, build_hicervix, build_mll23, build_nejm,
                              build_wbcatt)
