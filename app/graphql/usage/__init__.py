"""Usage ingestion over GraphQL."""
