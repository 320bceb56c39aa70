from copy import deepcopy

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

# Every rollup histogram becomes one integer column per bucket (`done_hist_0` ...): the
# analytics query sums plain columns, a fraction of what subscripting an array in every row
# cost PostgreSQL, and the consumer's upserts add columns instead of rebuilding arrays. The
# buckets are copied from the arrays and the arrays dropped in one rewrite of each table (an
# UPDATE would leave a dead version of every row behind). One operation per table: an
# AddField per column would clone the migration state 240 times.
HISTOGRAMS = {
    # model: (table, ((array, buckets), ...))
    'CohortRollup': ('analytics_cohort', (('done_hist', 29), ('done_weeks', 14))),
    'CohortWeekRollup': ('analytics_cohort_week', (('done_hist', 29), ('done_weeks', 14))),
    'StepRollup': ('analytics_step', (('time_hist', 29),)),
    'StepWeekRollup': ('analytics_step_week', (('time_hist', 29),)),
    'FlightRollup': ('analytics_flight', (('here_hist', 29),)),
    'CompletionRollup': ('analytics_completion', (('done_hist', 29),)),
    'CompletionDayRollup': ('analytics_completion_day', (('done_hist', 29),)),
}
BUCKET = fields.IntField(default=0, db_default=0)


class HistogramsToColumns(ops.TortoiseOperation):
    """Replace a rollup table's histogram arrays by one integer column per bucket."""

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        self.table, self.arrays = HISTOGRAMS[model_name]

    def describe(self) -> str:
        return f"Histograms of {self.model_name} to bucket columns"

    def _columns(self) -> list:
        return [(name, i, f'{name}_{i}') for name, size in self.arrays for i in range(size)]

    def state_forward(self, app_label, state) -> None:
        model_state = self.get_model_state(state, app_label, self.model_name)
        for _, _, column in self._columns():
            model_state.fields[column] = deepcopy(BUCKET)
        for name, _ in self.arrays:
            model_state.fields.pop(name)
        state.reload_models({(app_label, self.model_name)})

    async def database_forward(self, app_label, old_state, new_state, state_editor=None) -> None:
        if not state_editor:
            return
        columns = self._columns()
        adds = ', '.join(f'ADD COLUMN "{c}" INT NOT NULL DEFAULT 0' for _, _, c in columns)
        copies = ', '.join(
            f'ALTER COLUMN "{c}" TYPE INT USING coalesce({name}[{i + 1}], 0)'
            for name, i, c in columns
        )
        drops = ', '.join(f'DROP COLUMN "{name}"' for name, _ in self.arrays)
        # the second ALTER rewrites the table once (no dead row versions, arrays gone)
        await state_editor.client.execute_script(
            f'ALTER TABLE "{self.table}" {adds}; ALTER TABLE "{self.table}" {copies}, {drops}'
        )


class Migration(migrations.Migration):
    dependencies = [('liftoff', '0027_health_level_order')]

    initial = False

    operations = [HistogramsToColumns(model) for model in HISTOGRAMS]
