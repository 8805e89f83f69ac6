"""Migration of legacy session state (state.json files, the old SQLite db) into PostgreSQL.

``migrate_state.py`` is the command line; ``cli.main`` is its entry point, callable
in-process with an argv and an environment mapping.
"""
