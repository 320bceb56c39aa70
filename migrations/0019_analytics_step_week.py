from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.contrib.postgres.fields import ArrayField
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('liftoff', '0018_rate_limit_overrides')]

    initial = False

    operations = [
        ops.CreateModel(
            name='StepWeekRollup',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('liftoff.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='analytics_step_weeks', on_delete=OnDelete.CASCADE)),
                ('day', fields.DateField(description='Monday of the signup week (UTC).')),
                ('user_type', fields.CharField(max_length=64)),
                ('channel', fields.CharField(max_length=64)),
                ('template_version', fields.IntField()),
                ('stage_key', fields.CharField(max_length=80)),
                ('task_key', fields.CharField(max_length=80)),
                ('position', fields.IntField()),
                ('reached', fields.IntField(default=0)),
                ('completed', fields.IntField(default=0)),
                ('skipped', fields.IntField(default=0)),
                ('failed', fields.IntField(default=0)),
                ('here', fields.IntField(default=0)),
                ('dropped', fields.IntField(default=0)),
                ('time_hist', ArrayField(description='Time spent until completed, by bucket.', element_type='INT')),
            ],
            options={'table': 'analytics_step_week', 'app': 'liftoff', 'unique_together': (('organization_id', 'day', 'user_type', 'channel', 'template_version', 'stage_key', 'task_key', 'position'),), 'pk_attr': 'id', 'table_description': "The step rollup summed by signup week (`day` is its Monday): a period's whole weeks"},
            bases=['Model'],
        ),
    ]
