"""Ingest: probe URLs, the reader thread, clock sync and replay."""
