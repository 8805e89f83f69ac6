#!/usr/bin/env python3
"""Move legacy session state into PostgreSQL (``--help`` for everything).

Thin on purpose: the work lives in ``council_app.migration`` so tests can run it in-process.
"""

from __future__ import annotations

import os
import sys

from council_app.migration.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ))
