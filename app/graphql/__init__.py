"""GraphQL transport: a tree parallel to the domains; no business rules live here."""
