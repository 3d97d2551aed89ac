"""A tiny demo relying party for the trial (`make run`): registered only
when LATCHKEY_DEMO_DATA is on, which production refuses."""
