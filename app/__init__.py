"""Liftoff: customer onboarding and customer success backend."""
