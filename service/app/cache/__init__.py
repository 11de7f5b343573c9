"""The Redis product cache: lookups and fills, version fences, the fence log and lease,
the pipelined connection and Sentinel."""
