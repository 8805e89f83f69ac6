"""HTTP layer: blueprints per area, one place for error mapping."""
