"""GraphQL transport of milestones."""
