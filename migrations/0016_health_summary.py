from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

# The summary counts the rows of health_score per (organization, segment, channel, level,
# tenth of the scale). One statement-level trigger per operation folds the statement's old
# rows (minus) and new rows (plus) into net changes, written in key order so concurrent
# writers lock summary rows in the same order. A delete only updates existing summary rows:
# when an organization is deleted its summary may already be gone.
SUMMARY_TRIGGERS = [
    """UPDATE health_score h SET channel = c.acquisition_channel FROM customer c
WHERE c.organization_id = h.organization_id AND c.id = h.customer_id""",
    """INSERT INTO health_summary (organization_id, segment, channel, level, bucket, customers,
                            score_sum)
SELECT organization_id, segment, channel, level, least(floor(score / 10), 9)::int, count(*),
       sum(score::numeric(24, 6))
FROM health_score GROUP BY 1, 2, 3, 4, 5""",
    """CREATE FUNCTION health_summary_apply() RETURNS trigger LANGUAGE plpgsql AS $fn$
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
$fn$""",
    """CREATE TRIGGER health_summary_insert AFTER INSERT ON health_score
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION health_summary_apply()""",
    """CREATE TRIGGER health_summary_update AFTER UPDATE ON health_score
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION health_summary_apply()""",
    """CREATE TRIGGER health_summary_delete AFTER DELETE ON health_score
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION health_summary_apply()""",
]

DROP_SUMMARY_TRIGGERS = [
    "DROP TRIGGER IF EXISTS health_summary_insert ON health_score",
    "DROP TRIGGER IF EXISTS health_summary_update ON health_score",
    "DROP TRIGGER IF EXISTS health_summary_delete ON health_score",
    "DROP FUNCTION IF EXISTS health_summary_apply()",
]


class Migration(migrations.Migration):
    dependencies = [('liftoff', '0015_activity_cursor')]

    initial = False

    operations = [
        ops.CreateModel(
            name='HealthSummary',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('liftoff.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='health_summaries', on_delete=OnDelete.CASCADE)),
                ('segment', fields.CharField(max_length=64)),
                ('channel', fields.CharField(max_length=64)),
                ('level', fields.CharField(max_length=16)),
                ('bucket', fields.SmallIntField(description='least(floor(score / 10), 9)')),
                ('customers', fields.IntField(default=0)),
                ('score_sum', fields.DecimalField(default=0, max_digits=24, decimal_places=6)),
            ],
            options={'table': 'health_summary', 'app': 'liftoff', 'unique_together': (('organization_id', 'segment', 'channel', 'level', 'bucket'),), 'pk_attr': 'id', 'table_description': 'How many current scores of an organization fall in one (segment, channel, level,'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='HealthScore',
            name='channel',
            field=fields.CharField(default='', description="The customer's acquisition channel, for the summary's channel filter.", db_default='', max_length=64),
        ),
        ops.RunSQL(SUMMARY_TRIGGERS, reverse_sql=DROP_SUMMARY_TRIGGERS),
    ]
