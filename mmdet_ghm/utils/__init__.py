"""Helpers that are not losses, models, datasets or hooks."""
