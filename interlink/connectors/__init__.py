"""Connectors: the contract, the shared HTTP layer and one package per integration."""
