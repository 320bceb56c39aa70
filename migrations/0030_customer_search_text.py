from tortoise import migrations
from tortoise.migrations import operations as ops

# A customer's name and email, lower-cased once when written, in one column that a search
# tests with a plain LIKE: ILIKE lower-cases the pattern and both columns again for every
# customer it tests (name and email with ILIKE: about 2.6 us per customer on this machine's
# C.UTF-8 database; the lowered column with LIKE: about 0.3 us). The unit separator (\x1f)
# keeps a match from spanning name and email; a term that contains it is searched in the two
# columns with ILIKE instead.
#
# The signup-order index carries the column instead of name and email, so a search for a term
# many customers share walks it index-only; the trigram index of a rare term holds the
# organization first (btree_gin), so its bitmap has only that organization's matches instead
# of every organization's, each rechecked on its heap row. Adding the column rewrites the
# table (about 5 s per 100,000 customers here); the old indexes go first so the rewrite does
# not rebuild them.
SEARCH_TEXT = [
    "DROP INDEX IF EXISTS customer_list_order",
    "DROP INDEX IF EXISTS customer_name_trgm",
    "DROP INDEX IF EXISTS customer_email_trgm",
    "ALTER TABLE customer ADD COLUMN search_text text"
    " GENERATED ALWAYS AS (lower(name) || E'\\x1f' || lower(email)) STORED",
    "CREATE INDEX customer_list_order ON customer (organization_id, created_at, id)"
    " INCLUDE (search_text)",
    "CREATE EXTENSION IF NOT EXISTS btree_gin",
    "CREATE INDEX customer_search_trgm ON customer"
    " USING gin (organization_id, search_text gin_trgm_ops) WITH (gin_pending_list_limit = 256)",
]
DROP_SEARCH_TEXT = [
    "DROP INDEX IF EXISTS customer_search_trgm",
    "DROP INDEX IF EXISTS customer_list_order",
    "ALTER TABLE customer DROP COLUMN IF EXISTS search_text",
    "CREATE INDEX customer_name_trgm ON customer USING gin (name gin_trgm_ops)"
    " WITH (gin_pending_list_limit = 256)",
    "CREATE INDEX customer_email_trgm ON customer USING gin (email gin_trgm_ops)"
    " WITH (gin_pending_list_limit = 256)",
    "CREATE INDEX customer_list_order ON customer (organization_id, created_at, id)"
    " INCLUDE (name, email)",
]


# The rewritten table's pages are not marked all-visible until a vacuum, so until then every
# index-only walk would read each customer's heap row as well, and the new column has no
# statistics for the planner to weigh a term's frequency by (search walk or trigrams):
# vacuumed and analyzed here, outside the transaction, as autovacuum may be off or come late.
VACUUM = ["VACUUM (ANALYZE) customer"]


class Migration(migrations.Migration):
    dependencies = [('liftoff', '0029_customer_list_order')]

    initial = False
    atomic = False  # VACUUM runs outside a transaction; the schema change runs in one

    operations = [
        ops.RunSQL(SEARCH_TEXT, reverse_sql=DROP_SEARCH_TEXT, atomic=True),
        ops.RunSQL(VACUUM, reverse_sql=[], atomic=False),
    ]
