"""Onboarding analytics: rollups maintained from the event spine, reports, exports."""
