"""The HTTP API (contracts.md section 4): `create_app(...)` builds the FastAPI app."""

from .app import create_app
from .auth import Role
from .status import RegistryStatus, StatusProvider

__all__ = ["RegistryStatus", "Role", "StatusProvider", "create_app"]
