"""Pages for the logout area."""
