"""Helpers that tests share: real servers and clients for them."""
