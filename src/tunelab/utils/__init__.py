"""Small shared helpers (logging setup, environment report)."""
