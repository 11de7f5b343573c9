"""pgha's Pulumi program: components, config, outputs and the failover resource.

An ordinary package, installed into the project venv (`pip install -e .`), so
the program, the dynamic failover provider's process and the tests all import
it as `infra.*` with no PYTHONPATH tricks.
"""
