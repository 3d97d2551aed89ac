"""Pages for the devices area."""
