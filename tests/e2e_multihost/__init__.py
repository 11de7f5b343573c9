"""e2e: a stack spread over three Docker-in-Docker hosts (make test-e2e-multihost)."""
