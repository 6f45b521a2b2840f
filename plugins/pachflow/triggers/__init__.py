"""pachflow triggers."""
