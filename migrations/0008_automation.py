from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from app.automation.models import ActionStatus, RunStatus
from app.deliveries.models import DeliveryKind, DeliveryStatus
from app.notifications.models import CsmTaskStatus
from json import dumps, loads
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise.fields.db_defaults import SqlDefault
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('liftoff', '0007_performance')]

    initial = False

    operations = [
        ops.CreateModel(
            name='AutomationRule',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('liftoff.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='automation_rules', on_delete=OnDelete.CASCADE)),
                ('key', fields.CharField(null=True, max_length=80)),
                ('name', fields.CharField(max_length=200)),
                ('enabled', fields.BooleanField(default=False)),
                ('priority', fields.IntField(default=0)),
                ('trigger_key', fields.CharField(max_length=64)),
                ('version', fields.IntField(default=1)),
                ('definition', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_by', fields.CharField(null=True, max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
                ('deleted_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'automation_rule', 'app': 'liftoff', 'unique_together': (('organization_id', 'key'),), 'indexes': [Index(fields=['organization_id', 'enabled', 'trigger_key'])], 'pk_attr': 'id', 'table_description': "An organization's rule; `definition` is the normalized document of its current version."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='AutomationRuleVersion',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('liftoff.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='automation_rule_versions', on_delete=OnDelete.CASCADE)),
                ('rule', fields.ForeignKeyField('liftoff.AutomationRule', source_field='rule_id', db_constraint=True, to_field='id', related_name='versions', on_delete=OnDelete.CASCADE)),
                ('version', fields.IntField()),
                ('enabled', fields.BooleanField()),
                ('definition', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_by', fields.CharField(null=True, max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'automation_rule_version', 'app': 'liftoff', 'unique_together': (('organization_id', 'rule_id', 'version'),), 'pk_attr': 'id', 'table_description': 'Every version a rule had; a run names the version it used.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='AutomationRun',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('liftoff.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='automation_runs', on_delete=OnDelete.CASCADE)),
                ('rule', fields.ForeignKeyField('liftoff.AutomationRule', source_field='rule_id', db_constraint=True, to_field='id', related_name='runs', on_delete=OnDelete.CASCADE)),
                ('rule_version', fields.IntField()),
                ('customer_id', fields.UUIDField()),
                ('trigger', fields.CharField(max_length=200)),
                ('trigger_type', fields.CharField(max_length=64)),
                ('event_id', fields.BigIntField(null=True)),
                ('depth', fields.IntField(default=0)),
                ('status', fields.CharEnumField(description='SUCCEEDED: SUCCEEDED\nFAILED: FAILED\nPENDING: PENDING\nWAITING: WAITING\nSKIPPED: SKIPPED\nLOOP_LIMIT: LOOP_LIMIT', enum_type=RunStatus, max_length=16)),
                ('reason', fields.TextField(null=True, unique=False)),
                ('conditions', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('branches', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('resume_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('resume_after', fields.CharField(null=True, max_length=200)),
                ('goal_deadline', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('goal_met_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('duration_ms', fields.FloatField(default=0)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'automation_run', 'app': 'liftoff', 'unique_together': (('organization_id', 'rule_id', 'trigger'),), 'indexes': [Index(fields=['organization_id', 'rule_id', 'customer_id', 'created_at']), Index(fields=['organization_id', 'customer_id', 'goal_deadline']), Index(fields=['status', 'resume_at'])], 'pk_attr': 'id', 'table_description': 'One firing of a rule for a customer: why, what held, and what each action did.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ActionExecution',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('liftoff.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='automation_actions', on_delete=OnDelete.CASCADE)),
                ('run', fields.ForeignKeyField('liftoff.AutomationRun', source_field='run_id', db_constraint=True, to_field='id', related_name='actions', on_delete=OnDelete.CASCADE)),
                ('rule_id', fields.UUIDField()),
                ('idempotency_key', fields.CharField(max_length=300)),
                ('path', fields.CharField(max_length=200)),
                ('type', fields.CharField(max_length=32)),
                ('status', fields.CharEnumField(description='DONE: DONE\nFAILED: FAILED\nQUEUED: QUEUED\nWAITING: WAITING', enum_type=ActionStatus, max_length=16)),
                ('attempts', fields.IntField(default=1)),
                ('duration_ms', fields.FloatField(default=0)),
                ('error', fields.TextField(null=True, unique=False)),
                ('error_kind', fields.CharField(null=True, max_length=64)),
                ('result', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'automation_action', 'app': 'liftoff', 'unique_together': (('organization_id', 'idempotency_key'),), 'indexes': [Index(fields=['organization_id', 'rule_id', 'created_at'])], 'pk_attr': 'id', 'table_description': 'An action done once per (rule, trigger, action path): the key is unique in the database.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='CsmTask',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('liftoff.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='csm_tasks', on_delete=OnDelete.CASCADE)),
                ('customer_id', fields.UUIDField()),
                ('title', fields.CharField(max_length=200)),
                ('description', fields.TextField(default='', unique=False)),
                ('assignee', fields.CharField(null=True, max_length=254)),
                ('status', fields.CharEnumField(default=CsmTaskStatus.OPEN, description='OPEN: OPEN\nDONE: DONE', enum_type=CsmTaskStatus, max_length=16)),
                ('due_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('source', fields.CharField(null=True, max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('completed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('completed_by', fields.CharField(null=True, max_length=254)),
            ],
            options={'table': 'csm_task', 'app': 'liftoff', 'indexes': [Index(fields=['organization_id', 'status', 'created_at'])], 'pk_attr': 'id', 'table_description': 'A follow-up for the customer-success team (e.g. "call them"), with a due date.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='CustomerActivity',
            fields=[
                ('customer_id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('liftoff.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='customer_activity', on_delete=OnDelete.CASCADE)),
                ('last_usage_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'automation_customer_activity', 'app': 'liftoff', 'indexes': [Index(fields=['organization_id', 'last_usage_at'])], 'pk_attr': 'customer_id', 'table_description': 'When a customer was last seen using the product (from `usage.*` events).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Notification',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('liftoff.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='notifications', on_delete=OnDelete.CASCADE)),
                ('customer_id', fields.UUIDField(null=True)),
                ('operator', fields.CharField(null=True, max_length=254)),
                ('about_customer_id', fields.UUIDField(null=True)),
                ('title', fields.CharField(max_length=300)),
                ('body', fields.TextField(default='', unique=False)),
                ('source', fields.CharField(null=True, max_length=200)),
                ('read_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'notification', 'app': 'liftoff', 'indexes': [Index(fields=['organization_id', 'customer_id', 'created_at']), Index(fields=['organization_id', 'operator'])], 'pk_attr': 'id', 'table_description': "A message in someone's inbox: a customer's, or one operator's (by email)."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='WebhookEndpoint',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('liftoff.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='webhook_endpoints', on_delete=OnDelete.CASCADE)),
                ('url', fields.CharField(max_length=2000)),
                ('description', fields.CharField(default='', max_length=200)),
                ('event_types', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('secret', fields.CharField(max_length=100)),
                ('previous_secret', fields.CharField(null=True, max_length=100)),
                ('previous_secret_expires_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('enabled', fields.BooleanField(default=True)),
                ('disabled_reason', fields.CharField(null=True, max_length=300)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'webhook_endpoint', 'app': 'liftoff', 'pk_attr': 'id', 'table_description': 'Where an organization wants webhooks, with the secret that signs them.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Delivery',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('liftoff.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='deliveries', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharEnumField(description='EMAIL: EMAIL\nWEBHOOK: WEBHOOK', enum_type=DeliveryKind, max_length=16)),
                ('message_id', fields.CharField(max_length=64)),
                ('action_id', fields.UUIDField(null=True)),
                ('endpoint', fields.ForeignKeyField('liftoff.WebhookEndpoint', source_field='endpoint_id', null=True, db_constraint=True, to_field='id', related_name='deliveries', on_delete=OnDelete.CASCADE)),
                ('customer_id', fields.UUIDField(null=True)),
                ('event_type', fields.CharField(max_length=64)),
                ('recipient', fields.CharField(max_length=2000)),
                ('subject', fields.CharField(null=True, max_length=500)),
                ('payload', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('status', fields.CharEnumField(default=DeliveryStatus.PENDING, description='PENDING: PENDING\nSUCCEEDED: SUCCEEDED\nDEAD: DEAD\nDISABLED: DISABLED', enum_type=DeliveryStatus, max_length=16)),
                ('attempts', fields.IntField(default=0)),
                ('next_attempt_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('transport', fields.CharField(null=True, max_length=16)),
                ('last_error', fields.TextField(null=True, unique=False)),
                ('last_status_code', fields.IntField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('delivered_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'delivery', 'app': 'liftoff', 'unique_together': (('organization_id', 'message_id'),), 'indexes': [Index(fields=['status', 'next_attempt_at']), Index(fields=['organization_id', 'kind', 'created_at'])], 'pk_attr': 'id', 'table_description': 'One message on its way out: claimed by a worker with SKIP LOCKED, retried on schedule.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Customer',
            name='properties',
            field=fields.JSONField(default=dict, db_default=SqlDefault("'{}'::jsonb"), encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
    ]
