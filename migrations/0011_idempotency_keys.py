from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from app.idempotency.models import KeyState
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('liftoff', '0010_access')]

    initial = False

    operations = [
        ops.CreateModel(
            name='IdempotencyKey',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('liftoff.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='idempotency_keys', on_delete=OnDelete.CASCADE)),
                ('subject', fields.CharField(max_length=254)),
                ('key', fields.CharField(max_length=255)),
                ('fingerprint', fields.CharField(max_length=64)),
                ('state', fields.CharEnumField(default=KeyState.IN_PROGRESS, description='IN_PROGRESS: IN_PROGRESS\nDONE: DONE', enum_type=KeyState, max_length=16)),
                ('applied', fields.BooleanField(default=False)),
                ('owner', fields.UUIDField()),
                ('status_code', fields.IntField(null=True)),
                ('response', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('locked_until', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'idempotency_key', 'app': 'liftoff', 'unique_together': (('organization_id', 'subject', 'key'),), 'indexes': [Index(fields=['expires_at'])], 'pk_attr': 'id', 'table_description': 'One `Idempotency-Key` of one subject: the request it named and, once answered, the'},
            bases=['Model'],
        ),
    ]
