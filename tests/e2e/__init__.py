"""End-to-end tests against a stack deployed with Pulumi on the local Docker engine."""
