"""Pages for the apps area."""
