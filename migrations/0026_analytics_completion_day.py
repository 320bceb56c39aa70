from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.contrib.postgres.fields import ArrayField
from tortoise.fields.base import OnDelete
from tortoise import fields

# Completions summed over signup weeks, for trends of filters without a signup cohort; filled
# from the completion rollup at once.
BACKFILL = (
    "INSERT INTO analytics_completion_day (organization_id, day, user_type, channel,"
    " template_version, completions, done_hist)"
    " SELECT k.organization_id, k.day, k.user_type, k.channel, k.template_version,"
    " k.completions, h.done_hist FROM (SELECT organization_id, day, user_type, channel,"
    " template_version, sum(completions) AS completions FROM analytics_completion"
    " GROUP BY 1, 2, 3, 4, 5) AS k JOIN (SELECT organization_id, day, user_type, channel,"
    " template_version, array_agg(x ORDER BY n)::int[] AS done_hist FROM (SELECT"
    " organization_id, day, user_type, channel, template_version, n, sum(x) AS x"
    " FROM analytics_completion, unnest(done_hist) WITH ORDINALITY AS u(x, n)"
    " GROUP BY 1, 2, 3, 4, 5, 6) AS e GROUP BY 1, 2, 3, 4, 5) AS h"
    " USING (organization_id, day, user_type, channel, template_version)"
    " WHERE k.completions <> 0"
)


class Migration(migrations.Migration):
    dependencies = [('liftoff', '0025_analytics_flight')]

    initial = False

    operations = [
        ops.CreateModel(
            name='CompletionDayRollup',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('liftoff.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='analytics_completion_days', on_delete=OnDelete.CASCADE)),
                ('day', fields.DateField(description='Completion day (UTC).')),
                ('user_type', fields.CharField(max_length=64)),
                ('channel', fields.CharField(max_length=64)),
                ('template_version', fields.IntField()),
                ('completions', fields.IntField(default=0)),
                ('done_hist', ArrayField(element_type='INT')),
            ],
            options={'table': 'analytics_completion_day', 'app': 'liftoff', 'unique_together': (('organization_id', 'day', 'user_type', 'channel', 'template_version'),), 'pk_attr': 'id', 'table_description': 'The completion rollup summed over signup weeks: what trends read when the filter names'},
            bases=['Model'],
        ),
        ops.RunSQL(BACKFILL, reverse_sql=ops.RunSQL.noop),
    ]
