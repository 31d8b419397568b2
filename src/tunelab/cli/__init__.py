"""The ``tunelab`` command line."""
