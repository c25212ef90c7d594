"""Lua scripts of the Redis ledger store (package data)."""
