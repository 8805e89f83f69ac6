#!/usr/bin/env python3
"""The old runbook's command, word for word: the same tool as ``migrate_state.py``.

``python scripts/migrate_state_json_to_db.py`` (run in the old server's working directory,
DATABASE_URL set) adopts its state.json files and its database; ``--help`` for the rest.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# Run as a file from anywhere: the project root (this file's parent's parent) holds the
# package, and the current directory stays the old server's, where the tool looks.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from council_app.migration.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ))
