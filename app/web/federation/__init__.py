"""Pages for the federation area."""
