"""pachflow operators."""
