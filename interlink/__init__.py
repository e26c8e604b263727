"""Interlink: one API over the ERP, maintenance and chat systems of industrial companies."""

__version__ = "0.1.0"
