"""Pages and browser assets the app serves itself (no build step, nothing fetched at run time)."""
