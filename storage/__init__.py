"""Durable state: the SQLite order ledger."""
