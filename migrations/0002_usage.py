from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise.fields.db_defaults import SqlDefault
from tortoise import fields
from tortoise.indexes import Index


# Tortoise cannot declare partitions: the plain `usage_event` table CreateModel made (which keeps
# the migration state equal to the model) is replaced by a table range-partitioned by month.
PARTITIONED_USAGE_EVENT = [
    "DROP TABLE usage_event",
    "CREATE SEQUENCE usage_event_id_seq AS bigint",
    """CREATE TABLE usage_event (
        id bigint NOT NULL DEFAULT nextval('usage_event_id_seq'),
        organization_id uuid NOT NULL,
        customer_id uuid NOT NULL,
        name varchar(64) NOT NULL,
        occurred_at timestamptz NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now(),
        idempotency_key varchar(200) NOT NULL,
        properties jsonb NOT NULL DEFAULT '{}',
        PRIMARY KEY (id, occurred_at)
    ) PARTITION BY RANGE (occurred_at)""",
    "ALTER SEQUENCE usage_event_id_seq OWNED BY usage_event.id",
    "COMMENT ON TABLE usage_event IS 'One raw event a product reported for one customer (partitioned by month).'",
    "CREATE INDEX usage_event_customer_name_time ON usage_event (organization_id, customer_id, name, occurred_at)",
    """CREATE TABLE usage_event_key (
        organization_id uuid NOT NULL,
        idempotency_key varchar(200) NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (organization_id, idempotency_key)
    )""",
    "COMMENT ON TABLE usage_event_key IS 'Idempotency keys of accepted usage events, per organization.'",
    "CREATE INDEX usage_event_key_received ON usage_event_key USING brin (received_at)",
    """CREATE FUNCTION usage_event_ensure_partitions(first_day date, last_day date) RETURNS integer
    LANGUAGE plpgsql AS $$
    DECLARE
        month date := date_trunc('month', first_day)::date;
        created integer := 0;
    BEGIN
        WHILE month <= last_day LOOP
            IF to_regclass('usage_event_p' || to_char(month, 'YYYYMM')) IS NULL THEN
                EXECUTE format(
                    'CREATE TABLE %I PARTITION OF usage_event FOR VALUES FROM (%L) TO (%L)',
                    'usage_event_p' || to_char(month, 'YYYYMM'),
                    month::timestamp AT TIME ZONE 'UTC',
                    (month + interval '1 month')::timestamp AT TIME ZONE 'UTC');
                created := created + 1;
            END IF;
            month := (month + interval '1 month')::date;
        END LOOP;
        RETURN created;
    END $$""",
    "SELECT usage_event_ensure_partitions((now() - interval '430 days')::date, (now() + interval '62 days')::date)",
]


class Migration(migrations.Migration):
    dependencies = [('liftoff', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='UsageDaily',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('organization', fields.ForeignKeyField('liftoff.Organization', source_field='organization_id', db_constraint=True, to_field='id', related_name='usage_days', on_delete=OnDelete.CASCADE)),
                ('customer', fields.ForeignKeyField('liftoff.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name='usage_days', on_delete=OnDelete.CASCADE)),
                ('day', fields.DateField()),
                ('name', fields.CharField(max_length=64)),
                ('count', fields.BigIntField(default=0)),
                ('first_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('last_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'usage_daily', 'app': 'liftoff', 'unique_together': (('organization_id', 'customer_id', 'day', 'name'),), 'indexes': [Index(fields=['organization_id', 'day', 'name'])], 'pk_attr': 'id', 'table_description': 'How often a customer did one thing on one UTC day; kept current as events arrive.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='UsageEvent',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('organization_id', fields.UUIDField()),
                ('customer_id', fields.UUIDField()),
                ('name', fields.CharField(max_length=64)),
                ('occurred_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('received_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('idempotency_key', fields.CharField(max_length=200)),
                ('properties', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
            ],
            options={'table': 'usage_event', 'app': 'liftoff', 'pk_attr': 'id', 'table_description': 'One raw event a product reported for one customer (partitioned by month).'},
            bases=['Model'],
        ),
        ops.RunSQL(PARTITIONED_USAGE_EVENT),
        ops.AddField(
            model_name='ApiKey',
            name='created_by',
            field=fields.CharField(null=True, max_length=200),
        ),
        ops.AddField(
            model_name='ApiKey',
            name='last_used_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='ApiKey',
            name='scopes',
            field=fields.JSONField(default=list, db_default=SqlDefault("'[]'::jsonb"), encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
    ]
