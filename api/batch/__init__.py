"""Batch scoring of feedback files of any size: streamed, resumable, locally or on Ray."""
