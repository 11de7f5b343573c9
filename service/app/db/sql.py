"""Every SQL statement the API runs against PostgreSQL: the schema and its in-place
upgrades, the fence log, and the product reads and writes (app/db/database.py runs them).

Apart from the pools so that a statement can be read, and compared with the bench's
anchors (bench/perf/dbapp.py), without the connection handling around it.
"""

# Arbitrary constant shared by every API instance: serialises concurrent schema creation.
SCHEMA_LOCK_KEY = 0x70676861

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS products (
    id          bigserial PRIMARY KEY,
    name        text          NOT NULL,
    description text,
    price       numeric(12,2) NOT NULL CHECK (price >= 0),
    stock       integer       NOT NULL CHECK (stock >= 0),
    version     integer       NOT NULL DEFAULT 1,
    updated_at  timestamptz   NOT NULL DEFAULT now()
)
"""

# Fences of acknowledged writes that Redis did not take (app/cache/fencelog.py): written only while
# an instance cannot reach Redis, drained into it by every instance, so normally empty.
FENCE_LOG_SQL = """
CREATE TABLE IF NOT EXISTS cache_fence_log (
    id          bigserial   PRIMARY KEY,
    product_id  bigint      NOT NULL,
    fence       bigint      NOT NULL,
    logged_at   timestamptz NOT NULL DEFAULT now()
)
"""
LOG_FENCE = "INSERT INTO cache_fence_log (product_id, fence) VALUES (%s, %s) RETURNING id"
FENCE_LOGGED = "SELECT EXISTS (SELECT 1 FROM cache_fence_log WHERE id = %s)"
FENCE_LOG_BATCH = "SELECT id, product_id, fence FROM cache_fence_log ORDER BY id LIMIT %s"
FENCE_LOG_DELETE = "DELETE FROM cache_fence_log WHERE id = ANY(%s)"

# Added later, so a database created before is upgraded in place. Run only when missing:
# even with IF NOT EXISTS they lock the table (and, replayed, the replica's readers) on
# every start of every instance. The index is not partial, so ON CONFLICT can infer it;
# NULLs never conflict, so products created without a key are not constrained.
IDEMPOTENCY_STATE = """
SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'products'::regclass
               AND attname = 'idempotency_fingerprint' AND NOT attisdropped),
       to_regclass('products_idempotency_key') IS NOT NULL
"""
IDEMPOTENCY_COLUMNS = """ALTER TABLE products ADD COLUMN IF NOT EXISTS idempotency_key text,
    ADD COLUMN IF NOT EXISTS idempotency_fingerprint text"""
IDEMPOTENCY_INDEX = """CREATE UNIQUE INDEX IF NOT EXISTS products_idempotency_key
    ON products (idempotency_key)"""

COLUMNS = "id, name, description, price, stock, version, updated_at"

# LEFT JOIN from a one-row relation so the role of the server comes back even when the
# product does not exist: "not found" must be attributed to the right source too.
READ_ONE = f"""
SELECT pg_is_in_recovery(), {", ".join("p." + c for c in COLUMNS.split(", "))}
FROM (SELECT 1) AS one LEFT JOIN products AS p ON p.id = %s
"""

# The same read, saying also whether this server has replayed the WAL up to an LSN: the
# primary has (it is the WAL); a replica has once its replay position is at or past it.
READ_ONE_AFTER = f"""
SELECT pg_is_in_recovery(), COALESCE(pg_last_wal_replay_lsn() >= %s::pg_lsn, true),
       {", ".join("p." + c for c in COLUMNS.split(", "))}
FROM (SELECT 1) AS one LEFT JOIN products AS p ON p.id = %s
"""

READ_PAGE = f"""
SELECT pg_is_in_recovery(), {", ".join("p." + c for c in COLUMNS.split(", "))}
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (
    SELECT {COLUMNS} FROM products WHERE id > %s ORDER BY id LIMIT %s
) AS p ON true
ORDER BY p.id
"""

INSERT = f"""
INSERT INTO products (name, description, price, stock, idempotency_key, idempotency_fingerprint)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING {COLUMNS}
"""

BY_IDEMPOTENCY_KEY = f"""
SELECT {COLUMNS}, idempotency_fingerprint FROM products WHERE idempotency_key = %s
"""

UPDATE = f"""
UPDATE products
SET name = %s, description = %s, price = %s, stock = %s,
    version = version + 1, updated_at = now()
WHERE id = %s AND (%s::integer IS NULL OR version = %s::integer)
RETURNING {COLUMNS}
"""

DELETE = "DELETE FROM products WHERE id = %s RETURNING version"
CURRENT_VERSION = "SELECT version FROM products WHERE id = %s"
