from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('liftoff', '0009_health')]

    initial = False

    operations = [
        ops.CreateModel(
            name='TokenSubject',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('liftoff.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='token_subjects', on_delete=OnDelete.CASCADE)),
                ('subject', fields.CharField(max_length=254)),
                ('version', fields.IntField(default=0)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('revoked_by', fields.CharField(null=True, max_length=254)),
            ],
            options={'table': 'token_subject', 'app': 'liftoff', 'unique_together': (('organization_id', 'subject'),), 'pk_attr': 'id', 'table_description': 'The token version of one subject: tokens minted with an older version are revoked.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Operator',
            name='active',
            field=fields.BooleanField(default=True, db_default=True),
        ),
    ]
