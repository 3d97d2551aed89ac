"""Logout: OIDC RP-Initiated Logout 1.0 (the end-session endpoint) and OIDC
Back-Channel Logout 1.0 (telling relying parties what was cut off)."""
