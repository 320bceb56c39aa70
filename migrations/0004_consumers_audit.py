from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('liftoff', '0003_signin')]

    initial = False

    operations = [
        ops.CreateModel(
            name='AuditEntry',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('liftoff.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='audit_entries', on_delete=OnDelete.CASCADE)),
                ('actor', fields.CharField(max_length=254)),
                ('actor_role', fields.CharField(max_length=16)),
                ('action', fields.CharField(max_length=64)),
                ('target_type', fields.CharField(max_length=64)),
                ('target_id', fields.CharField(null=True, max_length=200)),
                ('before', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('after', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('reason', fields.TextField(null=True, unique=False)),
                ('request_id', fields.CharField(null=True, max_length=128)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'audit_entry', 'app': 'liftoff', 'indexes': [Index(fields=['organization_id', 'created_at']), Index(fields=['organization_id', 'action'])], 'pk_attr': 'id', 'table_description': 'One administrative action; rows are only ever inserted.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ConsumerCheckpoint',
            fields=[
                ('name', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('last_tx', fields.BigIntField(default=0)),
                ('last_id', fields.BigIntField(default=0)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'consumer_checkpoint', 'app': 'liftoff', 'pk_attr': 'name', 'table_description': 'How far one consumer of the outbox got: every event below (last_tx, last_id) is done.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ConsumerFailure',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('consumer', fields.CharField(max_length=64)),
                ('event_id', fields.BigIntField()),
                ('organization_id', fields.UUIDField()),
                ('event_type', fields.CharField(max_length=64)),
                ('error', fields.TextField(unique=False)),
                ('attempts', fields.IntField()),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'consumer_failure', 'app': 'liftoff', 'unique_together': (('consumer', 'event_id'),), 'pk_attr': 'id', 'table_description': 'An event a consumer could not handle after its retries; it was skipped and kept here.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ScheduleRun',
            fields=[
                ('name', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('last_started_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_error', fields.TextField(null=True, unique=False)),
            ],
            options={'table': 'schedule_run', 'app': 'liftoff', 'pk_attr': 'name', 'table_description': 'When a periodic job last started and finished; claiming a run updates this row, so'},
            bases=['Model'],
        ),
            # The outbox's transaction id orders events for consumers (app/events/consumers.py);
        # the database fills it, so the ORM never writes it.
        ops.RunSQL(
            [
                "ALTER TABLE outbox_event ADD COLUMN tx BIGINT NOT NULL"
                " DEFAULT (pg_current_xact_id()::text::bigint)",
                "CREATE INDEX outbox_event_tx_id ON outbox_event (tx, id)",
            ],
            reverse_sql=[
                "DROP INDEX IF EXISTS outbox_event_tx_id",
                "ALTER TABLE outbox_event DROP COLUMN IF EXISTS tx",
            ],
        ),
    ]
