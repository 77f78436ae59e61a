"""hivemem's conformance kit (backend, cache and codec suites) and server fixtures."""
