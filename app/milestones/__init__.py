"""Milestones: definitions per organization, criteria over usage, tasks, points and health,
achievements recorded once with their rewards."""
