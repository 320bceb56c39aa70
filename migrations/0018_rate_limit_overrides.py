from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('liftoff', '0017_foreign_key_indexes')]

    initial = False

    operations = [
        ops.CreateModel(
            name='RateLimitOverride',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('liftoff.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='rate_limit_overrides', on_delete=OnDelete.CASCADE)),
                ('budget', fields.CharField(max_length=32)),
                ('limit', fields.CharField(max_length=64)),
                ('reason', fields.TextField(null=True, unique=False)),
                ('set_by', fields.CharField(max_length=254)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'rate_limit_override', 'app': 'liftoff', 'unique_together': (('organization_id', 'budget'),), 'pk_attr': 'id', 'table_description': "An organization's own budget for one rate limit, in place of the server's default."},
            bases=['Model'],
        ),
    ]
