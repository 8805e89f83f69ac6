"""Agent Council Server application package."""
