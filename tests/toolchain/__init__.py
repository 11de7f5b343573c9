"""Smoke tests of the bring-up: Pulumi CLI, language host, Docker engine, base image."""
