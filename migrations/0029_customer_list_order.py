from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

# The signup-order index of a list page carries name and email: a search walks it index-only,
# testing each entry without reading its row, and reads the rows of the page alone.
# Trigram indexes keep their pending list short: a search reads all of it every time.
LIST_ORDER = [
    "CREATE INDEX customer_list_order ON customer (organization_id, created_at, id)"
    " INCLUDE (name, email)",
    "ALTER INDEX customer_name_trgm SET (gin_pending_list_limit = 256)",
    "ALTER INDEX customer_email_trgm SET (gin_pending_list_limit = 256)",
]
DROP_LIST_ORDER = [
    "ALTER INDEX customer_email_trgm RESET (gin_pending_list_limit)",
    "ALTER INDEX customer_name_trgm RESET (gin_pending_list_limit)",
    "DROP INDEX IF EXISTS customer_list_order",
]


class Migration(migrations.Migration):
    dependencies = [('liftoff', '0028_analytics_bucket_columns')]

    initial = False

    operations = [
        ops.RemoveIndex(
            model_name='Customer',
            name=None,
            fields=['organization_id', 'created_at'],
        ),
        ops.RemoveIndex(
            model_name='Customer',
            name=None,
            fields=['organization_id', 'user_type', 'created_at'],
        ),
        ops.RemoveIndex(
            model_name='Customer',
            name=None,
            fields=['organization_id', 'acquisition_channel', 'created_at'],
        ),
        ops.RemoveIndex(
            model_name='Customer',
            name=None,
            fields=['organization_id', 'workflow_status', 'created_at'],
        ),
        ops.AddIndex(
            model_name='Customer',
            index=Index(fields=['organization_id', 'user_type', 'created_at', 'id']),
        ),
        ops.AddIndex(
            model_name='Customer',
            index=Index(fields=['organization_id', 'acquisition_channel', 'created_at', 'id']),
        ),
        ops.AddIndex(
            model_name='Customer',
            index=Index(fields=['organization_id', 'workflow_status', 'created_at', 'id']),
        ),
        ops.RunSQL(LIST_ORDER, reverse_sql=DROP_LIST_ORDER),
    ]
