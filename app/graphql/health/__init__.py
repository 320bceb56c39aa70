"""GraphQL transport of health scores."""
