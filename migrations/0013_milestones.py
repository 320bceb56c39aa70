from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('liftoff', '0012_usage_ingestion')]

    initial = False

    operations = [
        ops.CreateModel(
            name='MilestoneAchievement',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('liftoff.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='milestone_achievements', on_delete=OnDelete.CASCADE)),
                ('customer', fields.ForeignKeyField('liftoff.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name='milestone_achievements', on_delete=OnDelete.CASCADE)),
                ('milestone_key', fields.CharField(max_length=80)),
                ('occurrence', fields.IntField(default=1)),
                ('set_version', fields.IntField()),
                ('name', fields.CharField(max_length=200)),
                ('value', fields.FloatField(description="The criterion's value when it was reached.")),
                ('points', fields.IntField(default=0)),
                ('badge', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('achieved_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'milestone_achievement', 'app': 'liftoff', 'unique_together': (('organization_id', 'customer_id', 'milestone_key', 'occurrence'),), 'indexes': [Index(fields=['organization_id', 'milestone_key', 'achieved_at'])], 'pk_attr': 'id', 'table_description': 'A customer reached a milestone (its `occurrence`-th time when repeatable).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='MilestoneSet',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('liftoff.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='milestone_sets', on_delete=OnDelete.CASCADE)),
                ('version', fields.IntField()),
                ('name', fields.CharField(max_length=200)),
                ('definition', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_by', fields.CharField(null=True, max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'milestone_set', 'app': 'liftoff', 'unique_together': (('organization_id', 'version'),), 'pk_attr': 'id', 'table_description': "One version of an organization's milestones; the newest one is evaluated."},
            bases=['Model'],
        ),
    ]
