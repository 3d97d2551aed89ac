"""Upkeep an operator schedules: purging rows that can no longer matter."""
