from tortoise import migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('liftoff', '0014_analytics_stage_forecast')]

    initial = False

    operations = [
        # The organization-wide feed reads an organization's events in (tx, id) order
        # (app/events/orgfeed.py).
        ops.RunSQL(
            [
                "CREATE INDEX outbox_event_org_tx_id ON outbox_event (organization_id, tx, id)",
            ],
            reverse_sql=["DROP INDEX IF EXISTS outbox_event_org_tx_id"],
        ),
    ]
