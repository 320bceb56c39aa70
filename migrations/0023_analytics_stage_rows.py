from tortoise import migrations
from tortoise.migrations import operations as ops

# The forecast reads the stage rows of analytics_step (task_key '') of one organization's
# period: without this index it scans every organization's rows of every day and step.
STAGE_ROWS = (
    "CREATE INDEX IF NOT EXISTS analytics_step_stage_rows"
    " ON analytics_step (organization_id, day) WHERE task_key = ''"
)


class Migration(migrations.Migration):
    dependencies = [('liftoff', '0022_analytics_weekly_backfill')]

    initial = False

    operations = [
        ops.RunSQL(STAGE_ROWS, reverse_sql="DROP INDEX IF EXISTS analytics_step_stage_rows")
    ]
