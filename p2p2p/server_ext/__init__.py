"""Jupyter server extension: hosts shares in the server process (arrives with the Jupyter integration)."""
