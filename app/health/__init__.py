"""Customer health: a versioned model per organization, scores that explain themselves."""
