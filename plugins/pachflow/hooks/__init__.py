"""pachflow hooks."""
