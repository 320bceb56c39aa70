from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.contrib.postgres.fields import ArrayField
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('liftoff', '0019_analytics_step_week')]

    initial = False

    operations = [
        ops.CreateModel(
            name='CohortWeekRollup',
            fields=[
                ('user_type', fields.CharField(max_length=64)),
                ('channel', fields.CharField(max_length=64)),
                ('template_version', fields.IntField()),
                ('customers', fields.IntField(default=0)),
                ('started', fields.IntField(default=0)),
                ('completed', fields.IntField(default=0)),
                ('active', fields.IntField(default=0)),
                ('points', fields.BigIntField(default=0)),
                ('badges', fields.IntField(default=0)),
                ('done_hist', ArrayField(description='Time from signup to completion, by bucket.', element_type='INT')),
                ('done_weeks', ArrayField(description='Completions by weeks after the signup week.', element_type='INT')),
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('liftoff.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='analytics_cohort_weeks', on_delete=OnDelete.CASCADE)),
                ('day', fields.DateField(description='Monday of the signup week (UTC).')),
            ],
            options={'table': 'analytics_cohort_week', 'app': 'liftoff', 'unique_together': (('organization_id', 'day', 'user_type', 'channel', 'template_version'),), 'pk_attr': 'id', 'table_description': 'The cohort rollup summed by signup week (`day` is its Monday).'},
            bases=['CohortCounts'],
        ),
    ]
