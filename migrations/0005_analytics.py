from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.contrib.postgres.fields import ArrayField
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('liftoff', '0004_consumers_audit')]

    initial = False

    operations = [
        ops.CreateModel(
            name='AnalyticsCustomer',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True, description="The customer's id.")),
                ('organization', fields.ForeignKeyField('liftoff.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='analytics_customers', on_delete=OnDelete.CASCADE)),
                ('contribution', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('active', fields.BooleanField()),
                ('last_activity_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'analytics_customer', 'app': 'liftoff', 'indexes': [Index(fields=['organization_id', 'active', 'last_activity_at']), Index(fields=['active', 'last_activity_at'])], 'pk_attr': 'id', 'table_description': 'What one customer currently contributes to the rollups (to subtract on its next change).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='CohortRollup',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('liftoff.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='analytics_cohorts', on_delete=OnDelete.CASCADE)),
                ('day', fields.DateField(description='Signup day (UTC).')),
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
            ],
            options={'table': 'analytics_cohort', 'app': 'liftoff', 'unique_together': (('organization_id', 'day', 'user_type', 'channel', 'template_version'),), 'pk_attr': 'id', 'table_description': 'Customers who signed up on one day in one segment: headline counts and histograms.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='CompletionRollup',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('liftoff.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='analytics_completions', on_delete=OnDelete.CASCADE)),
                ('day', fields.DateField(description='Completion day (UTC).')),
                ('user_type', fields.CharField(max_length=64)),
                ('channel', fields.CharField(max_length=64)),
                ('template_version', fields.IntField()),
                ('signup_week', fields.DateField()),
                ('completions', fields.IntField(default=0)),
                ('done_hist', ArrayField(element_type='INT')),
            ],
            options={'table': 'analytics_completion', 'app': 'liftoff', 'unique_together': (('organization_id', 'day', 'user_type', 'channel', 'template_version', 'signup_week'),), 'pk_attr': 'id', 'table_description': 'Workflows completed on one day, by segment and signup week, with their durations.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ExportJob',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('liftoff.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='analytics_exports', on_delete=OnDelete.CASCADE)),
                ('requested_by', fields.CharField(max_length=200)),
                ('format', fields.CharField(max_length=8)),
                ('sections', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('criteria', fields.JSONField(description='The analytics filter.', encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('status', fields.CharField(default='PENDING', max_length=16)),
                ('progress', fields.FloatField(default=0.0)),
                ('row_count', fields.BigIntField(default=0)),
                ('payload', fields.JSONField(null=True, description="The sections' data, as the analytics query returned it.", encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('content', fields.BinaryField(null=True)),
                ('filename', fields.CharField(default='', max_length=200)),
                ('content_type', fields.CharField(default='', max_length=100)),
                ('error', fields.TextField(null=True, unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('claimed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'analytics_export', 'app': 'liftoff', 'indexes': [Index(fields=['status', 'created_at'])], 'pk_attr': 'id', 'table_description': 'An analytics export: what was asked, by whom, how far it got, and its file.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='StepRollup',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('liftoff.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='analytics_steps', on_delete=OnDelete.CASCADE)),
                ('day', fields.DateField(description='Signup day (UTC).')),
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
            options={'table': 'analytics_step', 'app': 'liftoff', 'unique_together': (('organization_id', 'day', 'user_type', 'channel', 'template_version', 'stage_key', 'task_key', 'position'),), 'pk_attr': 'id', 'table_description': "Funnel counts of one stage (task_key '') or task for one signup day and segment."},
            bases=['Model'],
        ),
    ]
