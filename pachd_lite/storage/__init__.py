"""Durable storage: SQLite metadata and the content-addressed blob store."""
