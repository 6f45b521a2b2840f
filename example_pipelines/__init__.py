"""Example pipelines built on the pachflow provider (not part of the provider)."""
