"""Browser end-to-end tests of the web UI (marked e2e)."""
