from tortoise import migrations
from tortoise.migrations import operations as ops

# The summary triggers take a transaction-scoped advisory lock per organization before they
# touch its summary rows. An INSERT ... ON CONFLICT fires the insert trigger and then the update
# trigger, two upserts in one transaction; without the lock two such transactions (concurrent
# recompute sweeps) could each hold rows of one and wait for rows of the other. The lock is
# taken at the end of the scoring statement and held only until its commit.
LOCKED = """CREATE OR REPLACE FUNCTION health_summary_apply() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_advisory_xact_lock(7402, hashtext(o::text))
        FROM (SELECT DISTINCT organization_id AS o FROM old_rows ORDER BY 1) orgs;
        UPDATE health_summary s
        SET customers = s.customers - d.n, score_sum = s.score_sum - d.total
        FROM (
            SELECT organization_id, segment, channel, level,
                   least(floor(score / 10), 9)::int AS bucket, count(*) AS n,
                   sum(score::numeric(24, 6)) AS total
            FROM old_rows GROUP BY 1, 2, 3, 4, 5
        ) d
        WHERE s.organization_id = d.organization_id AND s.segment = d.segment
          AND s.channel = d.channel AND s.level = d.level AND s.bucket = d.bucket;
        RETURN NULL;
    END IF;
    PERFORM pg_advisory_xact_lock(7402, hashtext(o::text))
    FROM (SELECT DISTINCT organization_id AS o FROM new_rows ORDER BY 1) orgs;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO health_summary AS s (organization_id, segment, channel, level, bucket,
                                         customers, score_sum)
        SELECT organization_id, segment, channel, level,
               least(floor(score / 10), 9)::int, count(*), sum(score::numeric(24, 6))
        FROM new_rows
        GROUP BY 1, 2, 3, 4, 5
        ORDER BY 1, 2, 3, 4, 5
        ON CONFLICT (organization_id, segment, channel, level, bucket) DO UPDATE
        SET customers = s.customers + EXCLUDED.customers,
            score_sum = s.score_sum + EXCLUDED.score_sum;
        RETURN NULL;
    END IF;
    INSERT INTO health_summary AS s (organization_id, segment, channel, level, bucket,
                                     customers, score_sum)
    SELECT organization_id, segment, channel, level, bucket, sum(n), sum(total)
    FROM (
        SELECT organization_id, segment, channel, level,
               least(floor(score / 10), 9)::int AS bucket, 1 AS n,
               score::numeric(24, 6) AS total
        FROM new_rows
        UNION ALL
        SELECT organization_id, segment, channel, level,
               least(floor(score / 10), 9)::int, -1, -(score::numeric(24, 6))
        FROM old_rows
    ) moves
    GROUP BY 1, 2, 3, 4, 5
    HAVING sum(n) <> 0 OR sum(total) <> 0
    ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (organization_id, segment, channel, level, bucket) DO UPDATE
    SET customers = s.customers + EXCLUDED.customers,
        score_sum = s.score_sum + EXCLUDED.score_sum;
    RETURN NULL;
END
$fn$"""

UNLOCKED = """CREATE FUNCTION health_summary_apply() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE health_summary s
        SET customers = s.customers - d.n, score_sum = s.score_sum - d.total
        FROM (
            SELECT organization_id, segment, channel, level,
                   least(floor(score / 10), 9)::int AS bucket, count(*) AS n,
                   sum(score::numeric(24, 6)) AS total
            FROM old_rows GROUP BY 1, 2, 3, 4, 5
        ) d
        WHERE s.organization_id = d.organization_id AND s.segment = d.segment
          AND s.channel = d.channel AND s.level = d.level AND s.bucket = d.bucket;
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO health_summary AS s (organization_id, segment, channel, level, bucket,
                                         customers, score_sum)
        SELECT organization_id, segment, channel, level,
               least(floor(score / 10), 9)::int, count(*), sum(score::numeric(24, 6))
        FROM new_rows
        GROUP BY 1, 2, 3, 4, 5
        ORDER BY 1, 2, 3, 4, 5
        ON CONFLICT (organization_id, segment, channel, level, bucket) DO UPDATE
        SET customers = s.customers + EXCLUDED.customers,
            score_sum = s.score_sum + EXCLUDED.score_sum;
        RETURN NULL;
    END IF;
    INSERT INTO health_summary AS s (organization_id, segment, channel, level, bucket,
                                     customers, score_sum)
    SELECT organization_id, segment, channel, level, bucket, sum(n), sum(total)
    FROM (
        SELECT organization_id, segment, channel, level,
               least(floor(score / 10), 9)::int AS bucket, 1 AS n,
               score::numeric(24, 6) AS total
        FROM new_rows
        UNION ALL
        SELECT organization_id, segment, channel, level,
               least(floor(score / 10), 9)::int, -1, -(score::numeric(24, 6))
        FROM old_rows
    ) moves
    GROUP BY 1, 2, 3, 4, 5
    HAVING sum(n) <> 0 OR sum(total) <> 0
    ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (organization_id, segment, channel, level, bucket) DO UPDATE
    SET customers = s.customers + EXCLUDED.customers,
        score_sum = s.score_sum + EXCLUDED.score_sum;
    RETURN NULL;
END
$fn$"""


class Migration(migrations.Migration):
    dependencies = [('liftoff', '0020_analytics_cohort_week')]

    initial = False

    operations = [
        ops.RunSQL([LOCKED], reverse_sql=[UNLOCKED.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")]),
    ]
