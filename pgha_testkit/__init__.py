"""pgha's test-and-bench harness: what e2e tests, `make bench` and `make chaos` share.

One place for each helper, so a new mode (Patroni, Sentinel, multi-host) adds its probes
here instead of a fourth copy in every runner:

* `env`: ROOT and the Pulumi environment `scripts/env.sh` gives a shell;
* `stack`: typed stack outputs (keys from `infra.outputs`), the secret config keys and the
  Automation API workspace;
* `nodes`: a node's SQL, role and replication state over the Docker SDK, and what a stack
  leaves behind;
* `poll`: `wait_until`, the one bounded poll loop;
* `ports`: free loopback ports;
* `load` and `ledger`: a bounded API load generator and the lost-write ledger.

Nothing here asserts: helpers return facts or raise, and callers decide what they mean.
"""
