from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('liftoff', '0026_analytics_completion_day')]

    initial = False

    operations = [
        ops.RemoveIndex(
            model_name='HealthScore',
            name=None,
            fields=['organization_id', 'level'],
        ),
        ops.AddIndex(
            model_name='HealthScore',
            index=Index(fields=['organization_id', 'level', 'score', 'customer_id']),
        ),
    ]
