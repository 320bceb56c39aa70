"""Fill the weekly analytics rollups from the daily ones (sums by signup week), so figures
read from whole weeks are right at once after upgrading, before any rebuild."""

from tortoise import migrations
from tortoise.migrations import operations as ops

BACKFILL = [
    "DELETE FROM analytics_cohort_week",
    "WITH k AS (SELECT day - (extract(isodow FROM day)::int - 1) AS week, organization_id, user_type, channel, template_version, sum(customers) AS customers, sum(started) AS started, sum(completed) AS completed, sum(active) AS active, sum(points) AS points, sum(badges) AS badges FROM analytics_cohort GROUP BY day - (extract(isodow FROM day)::int - 1), organization_id, user_type, channel, template_version), h0 AS (SELECT week, organization_id, user_type, channel, template_version, array_agg(x ORDER BY n)::int[] AS done_hist FROM (SELECT day - (extract(isodow FROM day)::int - 1) AS week, organization_id, user_type, channel, template_version, n, sum(x) AS x FROM analytics_cohort, unnest(done_hist) WITH ORDINALITY AS u(x, n) GROUP BY day - (extract(isodow FROM day)::int - 1), organization_id, user_type, channel, template_version, n) e GROUP BY week, organization_id, user_type, channel, template_version), h1 AS (SELECT week, organization_id, user_type, channel, template_version, array_agg(x ORDER BY n)::int[] AS done_weeks FROM (SELECT day - (extract(isodow FROM day)::int - 1) AS week, organization_id, user_type, channel, template_version, n, sum(x) AS x FROM analytics_cohort, unnest(done_weeks) WITH ORDINALITY AS u(x, n) GROUP BY day - (extract(isodow FROM day)::int - 1), organization_id, user_type, channel, template_version, n) e GROUP BY week, organization_id, user_type, channel, template_version) INSERT INTO analytics_cohort_week (organization_id, day, user_type, channel, template_version, customers, started, completed, active, points, badges, done_hist, done_weeks) SELECT organization_id, week, user_type, channel, template_version, customers, started, completed, active, points, badges, done_hist, done_weeks FROM k JOIN h0 USING (week, organization_id, user_type, channel, template_version) JOIN h1 USING (week, organization_id, user_type, channel, template_version)",
    "DELETE FROM analytics_step_week",
    "WITH k AS (SELECT day - (extract(isodow FROM day)::int - 1) AS week, organization_id, user_type, channel, template_version, stage_key, task_key, position, sum(reached) AS reached, sum(completed) AS completed, sum(skipped) AS skipped, sum(failed) AS failed, sum(here) AS here, sum(dropped) AS dropped FROM analytics_step GROUP BY day - (extract(isodow FROM day)::int - 1), organization_id, user_type, channel, template_version, stage_key, task_key, position), h0 AS (SELECT week, organization_id, user_type, channel, template_version, stage_key, task_key, position, array_agg(x ORDER BY n)::int[] AS time_hist FROM (SELECT day - (extract(isodow FROM day)::int - 1) AS week, organization_id, user_type, channel, template_version, stage_key, task_key, position, n, sum(x) AS x FROM analytics_step, unnest(time_hist) WITH ORDINALITY AS u(x, n) GROUP BY day - (extract(isodow FROM day)::int - 1), organization_id, user_type, channel, template_version, stage_key, task_key, position, n) e GROUP BY week, organization_id, user_type, channel, template_version, stage_key, task_key, position) INSERT INTO analytics_step_week (organization_id, day, user_type, channel, template_version, stage_key, task_key, position, reached, completed, skipped, failed, here, dropped, time_hist) SELECT organization_id, week, user_type, channel, template_version, stage_key, task_key, position, reached, completed, skipped, failed, here, dropped, time_hist FROM k JOIN h0 USING (week, organization_id, user_type, channel, template_version, stage_key, task_key, position)",
]


class Migration(migrations.Migration):
    dependencies = [('liftoff', '0021_health_summary_lock')]

    initial = False

    operations = [ops.RunSQL(BACKFILL, reverse_sql=ops.RunSQL.noop)]
