from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

from app.onboarding.states import WorkflowStatus

# Derived figures of every existing workflow, as the engine computes them (rules.py):
# progress in percent of the counted tasks (the required ones, else all) that are done,
# minutes of counted work left (less the share of IN_PROGRESS tasks already progressed),
# and the current stage (the first not completed by position, else the last one).
BACKFILL_FIGURES = """
WITH t AS (
  SELECT workflow_id, status, progress, estimated_minutes, required,
         bool_or(required) OVER (PARTITION BY workflow_id) AS any_required
  FROM workflow_task
), c AS (
  SELECT workflow_id, count(*) AS n,
         count(*) FILTER (WHERE status IN ('COMPLETED', 'SKIPPED')) AS done,
         sum(CASE WHEN status IN ('COMPLETED', 'SKIPPED') THEN 0
                  WHEN status = 'IN_PROGRESS' THEN estimated_minutes * (1 - progress / 100.0)
                  ELSE estimated_minutes END) AS minutes
  FROM t WHERE required OR NOT any_required GROUP BY workflow_id
), s AS (
  SELECT DISTINCT ON (workflow_id) workflow_id, key FROM workflow_stage
  ORDER BY workflow_id, status = 'COMPLETED',
           CASE WHEN status = 'COMPLETED' THEN -position ELSE position END
)
UPDATE workflow w SET
  progress = CASE WHEN w.status = 'COMPLETED' OR c.n IS NULL THEN 100
                  ELSE round(round(c.done::numeric / c.n, 4) * 100, 2) END,
  minutes_remaining = CASE WHEN w.status = 'COMPLETED' THEN 0
                           ELSE coalesce(round(c.minutes), 0) END,
  current_stage_key = s.key
FROM workflow w2
LEFT JOIN c ON c.workflow_id = w2.id
LEFT JOIN s ON s.workflow_id = w2.id
WHERE w.id = w2.id
"""

# Customers mirror their workflow's status (lists filter on one index); search uses trigrams.
BACKFILL_CUSTOMER_STATUS = """UPDATE customer c SET workflow_status = w.status FROM workflow w
WHERE w.customer_id = c.id AND w.organization_id = c.organization_id
  AND c.workflow_status <> w.status"""
SEARCH_INDEXES = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX customer_name_trgm ON customer USING gin (name gin_trgm_ops)",
    "CREATE INDEX customer_email_trgm ON customer USING gin (email gin_trgm_ops)",
]
DROP_SEARCH_INDEXES = [
    "DROP INDEX IF EXISTS customer_email_trgm",
    "DROP INDEX IF EXISTS customer_name_trgm",
]


class Migration(migrations.Migration):
    dependencies = [('liftoff', '0006_outbox_trace')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Workflow',
            name='current_stage_key',
            field=fields.CharField(null=True, max_length=80),
        ),
        ops.AddField(
            model_name='Workflow',
            name='minutes_remaining',
            field=fields.IntField(default=0, db_default=0),
        ),
        ops.AddField(
            model_name='Workflow',
            name='progress',
            field=fields.FloatField(default=0, description='Percent of required tasks done, 0-100.', db_default=0),
        ),
        ops.RunSQL(BACKFILL_FIGURES, reverse_sql=ops.RunSQL.noop),
        ops.AddField(
            model_name='Customer',
            name='workflow_status',
            field=fields.CharEnumField(default=WorkflowStatus.ACTIVE, description="Its workflow's status, kept here by the engine so lists filter on one index.", db_default='ACTIVE', enum_type=WorkflowStatus, max_length=16),
        ),
        ops.RunSQL(BACKFILL_CUSTOMER_STATUS, reverse_sql=ops.RunSQL.noop),
        ops.AddIndex(
            model_name='Customer',
            index=Index(fields=['organization_id', 'user_type', 'created_at']),
        ),
        ops.AddIndex(
            model_name='Customer',
            index=Index(fields=['organization_id', 'acquisition_channel', 'created_at']),
        ),
        ops.AddIndex(
            model_name='Customer',
            index=Index(fields=['organization_id', 'workflow_status', 'created_at']),
        ),
        ops.RunSQL(SEARCH_INDEXES, reverse_sql=DROP_SEARCH_INDEXES),
    ]
