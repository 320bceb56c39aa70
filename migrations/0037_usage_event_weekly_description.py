from tortoise import migrations
from tortoise.migrations import operations as ops

class Migration(migrations.Migration):
    dependencies = [('liftoff', '0036_usage_event_weekly')]

    initial = False

    operations = [
        ops.AlterModelOptions(
            name='UsageEvent',
            options={'table': 'usage_event', 'app': 'liftoff', 'pk_attr': 'id', 'table_description': 'One raw event a product reported for one customer (partitioned by week).'},
        ),
    ]
