from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields


# Rollups are derived data written only by set-based ingestion, for customers it resolved in the
# same transaction: no foreign-key triggers on their upsert, and room on each page for HOT updates
# (a count that grows rewrites no index entry).
class Migration(migrations.Migration):
    dependencies = [('liftoff', '0023_analytics_stage_rows')]

    initial = False

    operations = [
        ops.RunSQL(
            "ALTER TABLE usage_daily SET (fillfactor = 80)",
            reverse_sql="ALTER TABLE usage_daily RESET (fillfactor)",
        ),
        ops.RunSQL(
            "ALTER TABLE usage_daily DROP CONSTRAINT IF EXISTS usage_daily_customer_id_fkey, "
            "DROP CONSTRAINT IF EXISTS usage_daily_organization_id_fkey",
            reverse_sql="ALTER TABLE usage_daily ADD CONSTRAINT usage_daily_customer_id_fkey "
            "FOREIGN KEY (customer_id) REFERENCES customer(id) ON DELETE CASCADE, "
            "ADD CONSTRAINT usage_daily_organization_id_fkey "
            "FOREIGN KEY (organization_id) REFERENCES organization(id) ON DELETE CASCADE",
        ),
        ops.RemoveIndex(
            model_name="UsageDaily",
            name=None,
            fields=["customer_id"],
        ),
        ops.AlterField(
            model_name="UsageDaily",
            name="customer",
            field=fields.ForeignKeyField(
                "liftoff.Customer",
                source_field="customer_id",
                db_constraint=False,
                to_field="id",
                related_name="usage_days",
                on_delete=OnDelete.CASCADE,
            ),
        ),
        ops.AlterField(
            model_name="UsageDaily",
            name="organization",
            field=fields.ForeignKeyField(
                "liftoff.Organization",
                source_field="organization_id",
                db_constraint=False,
                to_field="id",
                related_name="usage_days",
                on_delete=OnDelete.CASCADE,
            ),
        ),
    ]
