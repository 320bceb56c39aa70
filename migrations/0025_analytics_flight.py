from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.contrib.postgres.fields import ArrayField
from tortoise.fields.base import OnDelete
from tortoise import fields

# The forecast's in-flight customers per stage move from the stage rows of analytics_step
# (column here_hist) to their own compact table: copied over (summed per key), then the column
# and the partial index 0023 gave those rows go.
BACKFILL = (
    "INSERT INTO analytics_flight (organization_id, day, user_type, channel, template_version,"
    " stage_key, here_hist)"
    " SELECT organization_id, day, user_type, channel, template_version, stage_key,"
    " array_agg(x ORDER BY n)::int[] FROM (SELECT organization_id, day, user_type, channel,"
    " template_version, stage_key, n, sum(coalesce(x, 0)) AS x FROM analytics_step,"
    " unnest(here_hist) WITH ORDINALITY AS u(x, n) WHERE task_key = '' AND here_hist IS NOT NULL"
    " GROUP BY 1, 2, 3, 4, 5, 6, 7) AS e GROUP BY 1, 2, 3, 4, 5, 6 HAVING sum(x) <> 0"
)


class Migration(migrations.Migration):
    dependencies = [('liftoff', '0024_usage_daily_lean')]

    initial = False

    operations = [
        ops.CreateModel(
            name='FlightRollup',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('liftoff.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='analytics_flights', on_delete=OnDelete.CASCADE)),
                ('day', fields.DateField(description='Signup day (UTC).')),
                ('user_type', fields.CharField(max_length=64)),
                ('channel', fields.CharField(max_length=64)),
                ('template_version', fields.IntField()),
                ('stage_key', fields.CharField(max_length=80)),
                ('here_hist', ArrayField(description='Customers by time from signup to entering it.', element_type='INT')),
            ],
            options={'table': 'analytics_flight', 'app': 'liftoff', 'unique_together': (('organization_id', 'day', 'user_type', 'channel', 'template_version', 'stage_key'),), 'pk_attr': 'id', 'table_description': 'Customers in one stage now, per signup day and segment, by time from signup to entering'},
            bases=['Model'],
        ),
        ops.RunSQL(BACKFILL, reverse_sql=ops.RunSQL.noop),
        ops.RunSQL(
            "DROP INDEX IF EXISTS analytics_step_stage_rows",
            reverse_sql="CREATE INDEX IF NOT EXISTS analytics_step_stage_rows"
            " ON analytics_step (organization_id, day) WHERE task_key = ''",
        ),
        ops.RemoveField(model_name='StepRollup', name='here_hist'),
    ]
