"""pachflow sensors."""
