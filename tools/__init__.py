"""Helpers bench/ and tests/ share: the project as a whole (its pipeline, its params, a scratch copy)."""
