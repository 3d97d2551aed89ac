"""Account security: 2FA settings, deactivation and deletion, security history."""
