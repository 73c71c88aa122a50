"""The FastAPI service wired to the container."""

from app.web.app import create_app

__all__ = ["create_app"]
