"""pgha product API: FastAPI service over a PostgreSQL primary/replica pair and Redis."""
