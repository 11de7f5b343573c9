"""`make drill`: the backup and restore drill of issue 22, measured rather than asserted.

It deploys a throwaway source stack, fills it (pgbench, about 1 GB at scale 70; `--quick`
uses scale 1), writes a ledger of products through the API for the whole drill, and then
measures: a full backup (time, and the API's p99 during it against without it), a
point-in-time restore into a new stack to just before a `DELETE FROM products` (time to a
writable primary and to every replica streaming, Jepsen-style exactness of the ledger,
every deleted row back), in failoverMode patroni a replica restored from the repository
against one cloned by pg_basebackup (time to streaming, bytes the primary sent), and the
RPO of a total loss (every node and its volume removed, restore `latest`: acknowledged
writes lost, time from the loss to writable). Every stack it creates is destroyed.

Modules: `ledger` (the API writer and the latency probe), `steps` (the stack operations),
`report` (JSON and markdown under bench/results/), `__main__` (the sequence).
"""
