"""The HTTP layer: routes, the fast paths in front of FastAPI, errors and middleware."""
