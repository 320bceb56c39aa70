from tortoise import migrations
from tortoise.migrations import operations as ops

# Room on each page of `health_score` for the next version of its rows. A full recompute
# rewrites most scores every day (recency and pace move): with full pages each new version
# went to a page at the end of the table, which grew by the rewritten rows on every recompute
# wherever VACUUM had not run since (the pages they left are reused only after it), and the
# rows' lookups, index entries and cached pages spread over ever more pages. With half of each
# page free (a row is about 0.9 kB), a page's rows are rewritten on their own page, where the
# versions a previous recompute left are pruned on the way, and the update of a score whose
# indexed columns (score, level) stayed the same is HOT (no new index entries). At 100,000
# customers the table then stays at the same size recompute after recompute instead of
# growing by its live size each time.
#
# The fill factor applies to pages written from now on: a database migrated with scores in
# place keeps its full pages until their rows are rewritten (the next full recompute moves
# each rewritten row to a page with room) or the table is (VACUUM FULL health_score, at a
# quiet hour).
FILLFACTOR = ["ALTER TABLE health_score SET (fillfactor = 50)"]
RESET_FILLFACTOR = ["ALTER TABLE health_score RESET (fillfactor)"]


class Migration(migrations.Migration):
    dependencies = [('liftoff', '0034_drop_usage_pack')]

    initial = False

    operations = [ops.RunSQL(FILLFACTOR, reverse_sql=RESET_FILLFACTOR)]
