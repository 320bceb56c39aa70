from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('liftoff', '0011_idempotency_keys')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Organization',
            name='event_retention_days',
            field=fields.IntField(null=True, description='Days of usage events kept; null keeps LIFTOFF_EVENT_RETENTION_DAYS.'),
        ),
    ]
