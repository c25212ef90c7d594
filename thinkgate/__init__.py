"""thinkgate: the Python client SDK and the ``thinkgate`` command line.

Importing this package pulls in no server dependency (FastAPI, torch, sklearn).
"""
