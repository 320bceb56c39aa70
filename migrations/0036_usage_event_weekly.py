from tortoise import migrations
from tortoise.migrations import operations as ops

# New `usage_event` partitions hold a UTC week (Monday to Monday, `usage_event_wYYYYMMDD`)
# instead of a month, and the per-customer index leaves `occurred_at` out.
#
# Why: every ingested event inserts into the per-customer index of the partition its
# `occurredAt` falls in, at a random customer's place. With `(organization_id, customer_id,
# name, occurred_at)` those inserts land on random leaves of the whole index of every
# partition being written (~70 bytes an entry), which outgrows the shared buffers from a few
# million events on: CPU per event 1.4-1.6x an empty table's at 10-50 million (bench/README).
# `(organization_id, customer_id, name)` holds the same entries as posting lists of
# de-duplicated keys (~7 bytes an event); a new row's heap address is the highest of its key,
# so its entry goes to the end of its customer's and name's list, never in between. Readers
# (property filters and exact windows of milestones, retention's deletes) find a customer's
# rows of a name through it and check `occurred_at` on the row, as they check `properties`;
# what a window's edge partition holds outside the window is at most a week with weekly
# partitions, and partition pruning by `occurred_at` works as before.
#
# Existing month partitions that hold rows stay as they are; empty ones (the months ahead,
# and past months without events) are dropped and their days covered by weeks again, so no
# two partitions overlap: a week that meets an existing month is cut short at its bounds.
# Retention drops any partition whose upper bound is past the window, read from the catalog
# (`usage_event_bounds()`), whatever its name.
BOUNDS = """CREATE FUNCTION usage_event_bounds()
    RETURNS TABLE (name text, lower_at timestamptz, upper_at timestamptz)
    LANGUAGE sql STABLE AS $$
    SELECT c.relname::text,
           substring(pg_get_expr(c.relpartbound, c.oid) FROM 'FROM \\(''([^'']*)''\\)')::timestamptz,
           substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \\(''([^'']*)''\\)')::timestamptz
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'usage_event'::regclass
$$"""

ENSURE = """CREATE OR REPLACE FUNCTION usage_event_ensure_partitions(first_day date, last_day date)
    RETURNS integer LANGUAGE plpgsql AS $$
    DECLARE
        at timestamptz := first_day::timestamp AT TIME ZONE 'UTC';
        stop timestamptz := (last_day + 1)::timestamp AT TIME ZONE 'UTC';
        covered timestamptz;
        lo timestamptz;
        hi timestamptz;
        failed timestamptz;
        created integer := 0;
    BEGIN
        WHILE at < stop LOOP
            SELECT b.upper_at INTO covered FROM usage_event_bounds() b
            WHERE b.lower_at <= at AND at < b.upper_at;
            IF covered IS NOT NULL THEN
                at := covered;
                CONTINUE;
            END IF;
            lo := date_trunc('week', at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
            SELECT greatest(lo, max(b.upper_at)) INTO lo FROM usage_event_bounds() b
            WHERE b.upper_at <= at;
            SELECT least(lo + interval '7 days', min(b.lower_at)) INTO hi
            FROM usage_event_bounds() b WHERE b.lower_at > at;
            hi := least(hi, date_trunc('week', at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                            + interval '7 days');
            BEGIN
                EXECUTE format(
                    'CREATE TABLE %I PARTITION OF usage_event FOR VALUES FROM (%L) TO (%L)',
                    'usage_event_w' || to_char(lo AT TIME ZONE 'UTC', 'YYYYMMDD'), lo, hi);
                created := created + 1;
                at := hi;
            EXCEPTION WHEN duplicate_table OR invalid_object_definition THEN
                -- another transaction created it meanwhile: look again, once
                IF failed = at THEN
                    RAISE;
                END IF;
                failed := at;
            END;
        END LOOP;
        RETURN created;
    END $$"""

# Empty partitions go (their days come back as weeks); those with rows stay.
DROP_EMPTY = """DO $$
    DECLARE
        part record;
        empty boolean;
    BEGIN
        FOR part IN SELECT name FROM usage_event_bounds() LOOP
            EXECUTE format('SELECT NOT EXISTS (SELECT FROM %I)', part.name) INTO empty;
            IF empty THEN
                EXECUTE format('DROP TABLE %I', part.name);
            END IF;
        END LOOP;
    END $$"""

WEEKLY = [
    BOUNDS,
    ENSURE,
    DROP_EMPTY,
    "SELECT usage_event_ensure_partitions((now() - interval '430 days')::date,"
    " (now() + interval '62 days')::date)",
    "CREATE INDEX usage_event_customer_name ON usage_event (organization_id, customer_id, name)",
    "DROP INDEX usage_event_customer_name_time",
    "COMMENT ON TABLE usage_event IS 'One raw event a product reported for one customer"
    " (partitioned by week of occurred_at; older partitions by month).'",
]


class Migration(migrations.Migration):
    dependencies = [('liftoff', '0035_health_score_fillfactor')]

    initial = False

    operations = [ops.RunSQL(WEEKLY)]
