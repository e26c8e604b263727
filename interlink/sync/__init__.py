"""The sync engine, its dispatchers and run requests."""
