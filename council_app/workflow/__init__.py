"""Council workflow: uploads, session logs and orchestration."""
