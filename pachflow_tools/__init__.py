"""pachflow's tooling: the ``pachflow`` command line, the local stack and the demo.

It depends on the provider (package ``pachflow``); the provider never imports it.
"""
