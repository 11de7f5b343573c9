"""pgha measurements against a deployed stack (`make bench`, `make chaos`).

Nothing here is a test: runners write reports to `bench/results/` and never assert figures.
"""
