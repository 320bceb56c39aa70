from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('liftoff', '0002_usage')]

    initial = False

    operations = [
        ops.CreateModel(
            name='OperatorPassword',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('operator', fields.OneToOneField('liftoff.Operator', source_field='operator_id', db_constraint=True, to_field='id', related_name='password', on_delete=OnDelete.CASCADE)),
                ('organization', fields.ForeignKeyField('liftoff.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='operator_passwords', on_delete=OnDelete.CASCADE)),
                ('hash', fields.CharField(max_length=255)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'operator_password', 'app': 'liftoff', 'pk_attr': 'id', 'table_description': "An operator's argon2id password hash (operators without one sign in by link only)."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SignInLink',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('liftoff.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='sign_in_links', on_delete=OnDelete.CASCADE)),
                ('operator', fields.ForeignKeyField('liftoff.Operator', source_field='operator_id', null=True, db_constraint=True, to_field='id', related_name='sign_in_links', on_delete=OnDelete.CASCADE)),
                ('customer', fields.ForeignKeyField('liftoff.Customer', source_field='customer_id', null=True, db_constraint=True, to_field='id', related_name='sign_in_links', on_delete=OnDelete.CASCADE)),
                ('secret_hash', fields.CharField(unique=True, max_length=64)),
                ('created_by', fields.CharField(max_length=254)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('used_from', fields.CharField(null=True, max_length=64)),
            ],
            options={'table': 'sign_in_link', 'app': 'liftoff', 'pk_attr': 'id', 'table_description': 'A single-use sign-in link for an operator or a customer; only its SHA-256 is stored.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SignInThrottle',
            fields=[
                ('key', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=320)),
                ('failures', fields.IntField(default=0)),
                ('last_failure_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('locked_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'sign_in_throttle', 'app': 'liftoff', 'pk_attr': 'key', 'table_description': 'Recent failed sign-ins of one account (`account:<email>`) or address (`address:<ip>`).'},
            bases=['Model'],
        ),
    ]
