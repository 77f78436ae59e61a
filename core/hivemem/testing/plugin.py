"""pytest plugin entry point for the hivemem conformance kit."""
