"""Cutting off: ending a session, revoking a grant, signing out a device or an
account; and the one rule that says whether an artifact is still live."""
