"""`python -m bench.chaos`: the manual-failover campaign (`make chaos`), as before."""

from bench.chaos.manual import main

if __name__ == "__main__":
    raise SystemExit(main())
