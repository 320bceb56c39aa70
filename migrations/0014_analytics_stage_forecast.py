from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.contrib.postgres.fields import ArrayField

class Migration(migrations.Migration):
    dependencies = [('liftoff', '0013_milestones')]

    initial = False

    operations = [
        ops.AddField(
            model_name='StepRollup',
            name='here_hist',
            field=ArrayField(null=True, description='Stage rows: customers in the stage now, by time from signup to entering it.', element_type='INT'),
        ),
    ]
