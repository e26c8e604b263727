"""The hosted connect flow: the pages where an end user links a system, and the link sessions behind them.

``pages`` serves the HTML pages, ``sessions`` starts, completes and exchanges
link sessions, ``authorize`` runs the OAuth authorization code grant with
PKCE, and ``messages`` explains failed credential checks in plain words.
"""

from interlink.connect.pages import router

__all__ = ["router"]
