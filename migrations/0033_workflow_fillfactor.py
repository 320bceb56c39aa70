from tortoise import migrations
from tortoise.migrations import operations as ops

# Room on each page for the next version of its rows, so that an engine step's UPDATE of a
# workflow, its task and its event stream can be HOT (no new index entries; a read follows
# one chain on one page instead of an index entry per version). The updated columns of a
# PROGRESS step (progress, updated_at, last_activity_at, version, last_sequence, ...) are in
# no index; a step that changes a task's or workflow's status still updates the
# (organization_id, status) indexes that analytics and lists read.
#
# Fill factors apply to pages written from now on: a database migrated with rows already in
# these tables keeps its full pages until they are rewritten (VACUUM FULL workflow,
# workflow_task, event_stream; or pg_repack without the exclusive lock), which can wait for a
# quiet hour: without it the rows' first updates move them to pages with room.
FILLFACTOR = [
    "ALTER TABLE workflow SET (fillfactor = 70)",
    "ALTER TABLE workflow_task SET (fillfactor = 80)",
    "ALTER TABLE event_stream SET (fillfactor = 50)",
]
RESET_FILLFACTOR = [
    "ALTER TABLE event_stream RESET (fillfactor)",
    "ALTER TABLE workflow_task RESET (fillfactor)",
    "ALTER TABLE workflow RESET (fillfactor)",
]


class Migration(migrations.Migration):
    dependencies = [('liftoff', '0032_usage_pack')]

    initial = False

    operations = [ops.RunSQL(FILLFACTOR, reverse_sql=RESET_FILLFACTOR)]
