"""The organization's customers: the people being onboarded."""
