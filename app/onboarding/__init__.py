"""Workflow templates, workflows, stages and tasks."""
