"""PostgreSQL: the write and read pools, the product SQL, and recovery from outages."""
