"""Tests of the product API against real PostgreSQL, replica and Redis processes."""
