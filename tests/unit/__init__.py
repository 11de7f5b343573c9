"""Unit tests of pure logic (no Docker, no servers)."""
