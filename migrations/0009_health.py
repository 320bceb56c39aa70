from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from app.health.models import JobStatus, SnapshotKind
from json import dumps, loads
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('liftoff', '0008_automation')]

    initial = False

    operations = [
        ops.CreateModel(
            name='HealthDailyRun',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('liftoff.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='health_daily_runs', on_delete=OnDelete.CASCADE)),
                ('day', fields.DateField()),
                ('runner', fields.CharField(max_length=200)),
                ('started_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('customers', fields.IntField(default=0)),
            ],
            options={'table': 'health_daily_run', 'app': 'liftoff', 'unique_together': (('organization_id', 'day'),), 'pk_attr': 'id', 'table_description': 'The daily recompute and snapshot of one organization: claimed once per day.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='HealthJob',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('liftoff.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='health_jobs', on_delete=OnDelete.CASCADE)),
                ('status', fields.CharEnumField(default=JobStatus.PENDING, description='PENDING: PENDING\nRUNNING: RUNNING\nSUCCEEDED: SUCCEEDED\nFAILED: FAILED', enum_type=JobStatus, max_length=16)),
                ('scope', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('total', fields.IntField(default=0)),
                ('done', fields.IntField(default=0)),
                ('changed', fields.IntField(default=0)),
                ('error', fields.TextField(null=True, unique=False)),
                ('cursor', fields.UUIDField(null=True)),
                ('created_by', fields.CharField(max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('started_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('heartbeat_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'health_job', 'app': 'liftoff', 'indexes': [Index(fields=['status', 'created_at'])], 'pk_attr': 'id', 'table_description': 'An on-demand recompute over all or some customers, with its progress.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='HealthModel',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('liftoff.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='health_models', on_delete=OnDelete.CASCADE)),
                ('version', fields.IntField()),
                ('name', fields.CharField(max_length=200)),
                ('definition', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_by', fields.CharField(null=True, max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'health_model', 'app': 'liftoff', 'unique_together': (('organization_id', 'version'),), 'pk_attr': 'id', 'table_description': "One version of an organization's health model; the newest one scores."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='HealthNorm',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('liftoff.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='health_norms', on_delete=OnDelete.CASCADE)),
                ('median_events', fields.FloatField()),
                ('median_active_days', fields.FloatField()),
                ('has_usage', fields.BooleanField()),
                ('tracks_support', fields.BooleanField()),
                ('computed_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'health_norm', 'app': 'liftoff', 'unique_together': (('organization_id',),), 'pk_attr': 'id', 'table_description': "The organization's typical customer, measured at the last full recompute."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='HealthOverride',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('liftoff.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='health_overrides', on_delete=OnDelete.CASCADE)),
                ('customer', fields.ForeignKeyField('liftoff.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name='health_overrides', on_delete=OnDelete.CASCADE)),
                ('score', fields.FloatField(null=True)),
                ('level', fields.CharField(null=True, max_length=16)),
                ('reason', fields.TextField(unique=False)),
                ('previous', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('created_by', fields.CharField(max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('ended_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('ended_by', fields.CharField(null=True, max_length=200)),
            ],
            options={'table': 'health_override', 'app': 'liftoff', 'indexes': [Index(fields=['organization_id', 'customer_id']), Index(fields=['ended_at', 'expires_at'])], 'pk_attr': 'id', 'table_description': 'A score or level set by hand, with a reason; it lapses by itself at `expires_at`.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='HealthPending',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('liftoff.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='health_pending', on_delete=OnDelete.CASCADE)),
                ('customer', fields.ForeignKeyField('liftoff.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name='health_pending', on_delete=OnDelete.CASCADE)),
                ('due_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'health_pending', 'app': 'liftoff', 'pk_attr': 'id', 'table_description': 'A customer whose score must be recomputed once `due_at` has passed (debounce).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='HealthScore',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('liftoff.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='health_scores', on_delete=OnDelete.CASCADE)),
                ('customer', fields.ForeignKeyField('liftoff.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name='health_scores', on_delete=OnDelete.CASCADE)),
                ('score', fields.FloatField()),
                ('level', fields.CharField(max_length=16)),
                ('computed_score', fields.FloatField()),
                ('computed_level', fields.CharField(max_length=16)),
                ('confidence', fields.FloatField()),
                ('components', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('facts', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('segment', fields.CharField(max_length=64)),
                ('model_version', fields.IntField()),
                ('override_id', fields.UUIDField(null=True)),
                ('computed_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('changed_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'health_score', 'app': 'liftoff', 'unique_together': (('organization_id', 'customer_id'),), 'indexes': [Index(fields=['organization_id', 'score', 'customer_id']), Index(fields=['organization_id', 'level'])], 'pk_attr': 'id', 'table_description': "A customer's current score; `score`/`level` include an active override."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='HealthSnapshot',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('liftoff.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='health_snapshots', on_delete=OnDelete.CASCADE)),
                ('customer', fields.ForeignKeyField('liftoff.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name='health_snapshots', on_delete=OnDelete.CASCADE)),
                ('day', fields.DateField()),
                ('kind', fields.CharEnumField(description='DAILY: DAILY\nLEVEL_CHANGE: LEVEL_CHANGE', enum_type=SnapshotKind, max_length=16)),
                ('taken_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('score', fields.FloatField()),
                ('level', fields.CharField(max_length=16)),
                ('confidence', fields.FloatField()),
                ('components', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('facts', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('model_version', fields.IntField()),
            ],
            options={'table': 'health_snapshot', 'app': 'liftoff', 'unique_together': (('organization_id', 'day', 'kind', 'customer_id', 'taken_at'),), 'indexes': [Index(fields=['organization_id', 'customer_id', 'taken_at'])], 'pk_attr': 'id', 'table_description': "A customer's score at a point in time: once a day, and on every level change."},
            bases=['Model'],
        ),
    ]
