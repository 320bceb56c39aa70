from tortoise import migrations
from tortoise.migrations import operations as ops

# `usage_pack`: every daily rollup of a customer in one row, as parallel arrays ordered by
# (day, name), so a health recompute reads one row per customer instead of the ~34 rollup rows
# of 90 days (a thousand heap tuples per 30 customers, most of them buffer misses at 1M
# customers). Statement triggers on `usage_daily` keep it in the transaction of every write,
# whichever path writes (ingestion, import, demo, demo clone, retention, benchmarks): a written
# rollup replaces the element of its (day, name), a deleted one removes it (and a customer left
# with none loses its row). The merge happens in the upsert's DO UPDATE, which works on the
# newest committed pack row under its row lock, so concurrent writers of one customer compose;
# it re-sorts only the elements from the first written day on. Rollups never change customer,
# day or name. An upsert of rollups fires the insert trigger and then the update trigger, each
# locking its customers' pack rows in order; two such statements (concurrent ingest calls over
# overlapping customers) could each hold rows the other's second trigger wants, so the triggers
# first take a transaction-scoped advisory lock per organization (as the health summary's do):
# the rollup upserts still run side by side, only the pack merges and the commits queue.
PACK = [
    """CREATE TABLE usage_pack (
    customer_id UUID NOT NULL,
    organization_id UUID NOT NULL,
    days DATE[] NOT NULL,
    names TEXT[] NOT NULL,
    counts BIGINT[] NOT NULL,
    last_ats TIMESTAMPTZ[] NOT NULL,
    PRIMARY KEY (customer_id, organization_id)
)""",
    "COMMENT ON TABLE usage_pack IS 'Each customer''s usage_daily rows as arrays in (day, name)"
    " order; kept by triggers on usage_daily.'",
    """CREATE FUNCTION usage_pack_apply() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        TRUNCATE usage_pack;
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_advisory_xact_lock(7403, hashtext(o::text))
        FROM (SELECT DISTINCT organization_id AS o FROM old_rows ORDER BY 1) orgs;
        UPDATE usage_pack p
        SET (days, names, counts, last_ats) = (
            SELECT coalesce(array_agg(o.d ORDER BY o.d, o.n), '{}'),
                   coalesce(array_agg(o.n ORDER BY o.d, o.n), '{}'),
                   coalesce(array_agg(o.c ORDER BY o.d, o.n), '{}'),
                   coalesce(array_agg(o.l ORDER BY o.d, o.n), '{}')
            FROM unnest(p.days, p.names, p.counts, p.last_ats) AS o(d, n, c, l)
            WHERE NOT EXISTS (
                SELECT 1 FROM unnest(g.days, g.names) AS x(d, n)
                WHERE x.d = o.d AND x.n = o.n
            )
        )
        FROM (
            SELECT organization_id, customer_id, array_agg(day) AS days,
                   array_agg(name::text) AS names
            FROM old_rows GROUP BY 1, 2
        ) g
        WHERE p.customer_id = g.customer_id AND p.organization_id = g.organization_id;
        DELETE FROM usage_pack p
        WHERE cardinality(p.days) = 0 AND (p.customer_id, p.organization_id) IN (
            SELECT customer_id, organization_id FROM old_rows
        );
        RETURN NULL;
    END IF;
    PERFORM pg_advisory_xact_lock(7403, hashtext(o::text))
    FROM (SELECT DISTINCT organization_id AS o FROM new_rows ORDER BY 1) orgs;
    INSERT INTO usage_pack AS p (customer_id, organization_id, days, names, counts, last_ats)
    SELECT customer_id, organization_id,
           array_agg(day ORDER BY day, name), array_agg(name::text ORDER BY day, name),
           array_agg(count ORDER BY day, name), array_agg(last_at ORDER BY day, name)
    FROM new_rows
    GROUP BY customer_id, organization_id
    ORDER BY customer_id, organization_id
    ON CONFLICT (customer_id, organization_id) DO UPDATE
    SET (days, names, counts, last_ats) = (
        -- the elements before the first written day stay as they are (a slice; width_bucket
        -- finds it by binary search); only the tail, usually today's few, is merged
        SELECT p.days[:b.k] || m.days, p.names[:b.k] || m.names,
               p.counts[:b.k] || m.counts, p.last_ats[:b.k] || m.last_ats
        FROM (SELECT width_bucket(EXCLUDED.days[1] - 1, p.days) AS k) b
        CROSS JOIN LATERAL (
            SELECT array_agg(x.d ORDER BY x.d, x.n) AS days,
                   array_agg(x.n ORDER BY x.d, x.n) AS names,
                   array_agg(x.c ORDER BY x.d, x.n) AS counts,
                   array_agg(x.l ORDER BY x.d, x.n) AS last_ats
            FROM (
                SELECT o.d, o.n, o.c, o.l
                FROM unnest(p.days[b.k + 1:], p.names[b.k + 1:], p.counts[b.k + 1:],
                            p.last_ats[b.k + 1:]) AS o(d, n, c, l)
                WHERE NOT EXISTS (
                    SELECT 1 FROM unnest(EXCLUDED.days, EXCLUDED.names) AS e(d, n)
                    WHERE e.d = o.d AND e.n = o.n
                )
                UNION ALL
                SELECT * FROM unnest(EXCLUDED.days, EXCLUDED.names, EXCLUDED.counts,
                                     EXCLUDED.last_ats)
            ) x(d, n, c, l)
        ) m
    );
    RETURN NULL;
END
$fn$""",
    """CREATE TRIGGER usage_pack_insert AFTER INSERT ON usage_daily
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION usage_pack_apply()""",
    """CREATE TRIGGER usage_pack_update AFTER UPDATE ON usage_daily
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION usage_pack_apply()""",
    """CREATE TRIGGER usage_pack_delete AFTER DELETE ON usage_daily
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION usage_pack_apply()""",
    """CREATE TRIGGER usage_pack_truncate AFTER TRUNCATE ON usage_daily
    FOR EACH STATEMENT EXECUTE FUNCTION usage_pack_apply()""",
    # also under session_replication_role = replica, which bulk copies (the demo's clone) set to
    # skip foreign-key checks: the pack must follow every write
    "ALTER TABLE usage_daily ENABLE ALWAYS TRIGGER usage_pack_insert, "
    "ENABLE ALWAYS TRIGGER usage_pack_update, ENABLE ALWAYS TRIGGER usage_pack_delete, "
    "ENABLE ALWAYS TRIGGER usage_pack_truncate",
    # the rollups already written, read in the order of their unique index (no sort)
    "SET LOCAL work_mem = '64MB'",
    """INSERT INTO usage_pack (customer_id, organization_id, days, names, counts, last_ats)
    SELECT customer_id, organization_id,
           array_agg(day ORDER BY day, name), array_agg(name::text ORDER BY day, name),
           array_agg(count ORDER BY day, name), array_agg(last_at ORDER BY day, name)
    FROM usage_daily
    GROUP BY organization_id, customer_id""",
    "ANALYZE usage_pack",
]
DROP_PACK = [
    "DROP TRIGGER IF EXISTS usage_pack_truncate ON usage_daily",
    "DROP TRIGGER IF EXISTS usage_pack_delete ON usage_daily",
    "DROP TRIGGER IF EXISTS usage_pack_update ON usage_daily",
    "DROP TRIGGER IF EXISTS usage_pack_insert ON usage_daily",
    "DROP FUNCTION IF EXISTS usage_pack_apply()",
    "DROP TABLE IF EXISTS usage_pack",
]


class Migration(migrations.Migration):
    dependencies = [('liftoff', '0031_health_score_customer_key')]

    initial = False

    operations = [
        ops.RunSQL(PACK, reverse_sql=DROP_PACK),
    ]
