"""Apps with access: the clients a person has authorized, and taking that
authorization back."""
