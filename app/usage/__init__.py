"""Usage events from the product: ingestion, storage, daily rollups, import."""
