"""Pages for the accounts area."""
