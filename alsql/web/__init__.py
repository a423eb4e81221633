"""The labeling app: FastAPI, server-rendered pages and a little JS, all shipped here.

``create_app(url, secret_key)`` builds it; ``alsql serve`` runs it with uvicorn.
"""

from alsql.web.app import create_app

__all__ = ["create_app"]
