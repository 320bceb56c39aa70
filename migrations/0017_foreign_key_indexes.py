from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('liftoff', '0016_health_summary')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='ActionExecution',
            index=Index(fields=['run_id']),
        ),
        ops.AddIndex(
            model_name='AutomationRuleVersion',
            index=Index(fields=['rule_id']),
        ),
        ops.AddIndex(
            model_name='AutomationRun',
            index=Index(fields=['rule_id']),
        ),
        ops.AddIndex(
            model_name='Delivery',
            index=Index(fields=['endpoint_id']),
        ),
        ops.AddIndex(
            model_name='HealthOverride',
            index=Index(fields=['customer_id']),
        ),
        ops.AddIndex(
            model_name='HealthPending',
            index=Index(fields=['customer_id']),
        ),
        ops.AddIndex(
            model_name='HealthScore',
            index=Index(fields=['customer_id']),
        ),
        ops.AddIndex(
            model_name='HealthSnapshot',
            index=Index(fields=['customer_id']),
        ),
        ops.AddIndex(
            model_name='MilestoneAchievement',
            index=Index(fields=['customer_id']),
        ),
        ops.AddIndex(
            model_name='SignInLink',
            index=Index(fields=['customer_id']),
        ),
        ops.AddIndex(
            model_name='SignInLink',
            index=Index(fields=['operator_id']),
        ),
        ops.AddIndex(
            model_name='StageOverride',
            index=Index(fields=['workflow_id']),
        ),
        ops.AddIndex(
            model_name='StageOverride',
            index=Index(fields=['stage_id']),
        ),
        ops.AddIndex(
            model_name='UsageDaily',
            index=Index(fields=['customer_id']),
        ),
        ops.AddIndex(
            model_name='Workflow',
            index=Index(fields=['customer_id']),
        ),
        ops.AddIndex(
            model_name='Workflow',
            index=Index(fields=['template_id']),
        ),
        ops.AddIndex(
            model_name='WorkflowStage',
            index=Index(fields=['workflow_id']),
        ),
        ops.AddIndex(
            model_name='WorkflowTask',
            index=Index(fields=['workflow_id']),
        ),
        ops.AddIndex(
            model_name='WorkflowTask',
            index=Index(fields=['stage_id']),
        ),
    ]
