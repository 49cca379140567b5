"""Pydantic models at the HTTP edge: one family (In / Public / list wrapper) per entity."""
