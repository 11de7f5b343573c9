"""Chaos campaigns: one cell runner (runner.py) and its one report (report.py, figures.py),
configured by three campaigns that each bring only their matrix and their checks:
manual.py (`make chaos`), patroni.py (`make chaos-patroni`), sentinel.py (`make chaos-sentinel`).
"""
