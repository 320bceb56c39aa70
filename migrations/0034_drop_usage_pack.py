from tortoise import migrations
from tortoise.migrations import operations as ops

# `usage_pack` (0032) is gone again: keeping every customer's rollups packed in one row by
# triggers on `usage_daily` made each ingested event rewrite its customer's whole pack row
# (its arrays grow with the retention window) behind a lock per organization. On an empty
# event table, four clients' ingest calls fell from 22,660 to 7,926 events/s within three
# rounds (142 µs of CPU an event, 125 of it PostgreSQL, against 51 without the pack), while
# at 100,000 customers the health recompute it served read no faster (the gain measured with
# it came from storing day counts as the moments they count from, which stays). Health reads
# `usage_daily` again.
DROP_PACK = [
    "DROP TRIGGER IF EXISTS usage_pack_truncate ON usage_daily",
    "DROP TRIGGER IF EXISTS usage_pack_delete ON usage_daily",
    "DROP TRIGGER IF EXISTS usage_pack_update ON usage_daily",
    "DROP TRIGGER IF EXISTS usage_pack_insert ON usage_daily",
    "DROP FUNCTION IF EXISTS usage_pack_apply()",
    "DROP TABLE IF EXISTS usage_pack",
]


class Migration(migrations.Migration):
    dependencies = [('liftoff', '0033_workflow_fillfactor')]

    initial = False

    operations = [ops.RunSQL(DROP_PACK)]
