"""End-to-end tests of failoverMode patroni (Patroni over a 3-member etcd)."""
