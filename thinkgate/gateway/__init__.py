"""The gateway's internals (server side). Imported by ``server.py`` only, never by ``import thinkgate``."""
