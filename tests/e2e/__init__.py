"""End-to-end tests: real `liftoff` processes spoken to over HTTP."""
