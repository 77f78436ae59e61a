"""Core test configuration.

The conformance kit's pytest plugin (``hivemem.testing.plugin``) is loaded
through its ``pytest11`` entry point, so its fixtures are available here
without registering anything. ``pytester`` runs the kit against deliberately
broken implementations (tests/test_kit_meta.py).
"""

pytest_plugins = ("pytester",)
