from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.migrations.constraints import UniqueConstraint

# One key, customer first, serves the lookups by (organization, customer), the upserts' conflict
# (either column order matches it) and the customer foreign key: the index on customer_id alone
# was redundant, and every rewritten score paid an entry in it.

class Migration(migrations.Migration):
    dependencies = [('liftoff', '0030_customer_search_text')]

    initial = False

    operations = [
        ops.AddConstraint(
            model_name='HealthScore',
            constraint=UniqueConstraint(fields=('customer_id', 'organization_id'), name=None),
        ),
        ops.RemoveIndex(
            model_name='HealthScore',
            name=None,
            fields=['customer_id'],
        ),
        ops.RemoveConstraint(
            model_name='HealthScore',
            name=None,
            fields=['organization_id', 'customer_id'],
        ),
    ]
