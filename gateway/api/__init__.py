"""The HTTP API (docs/contracts.md section 4): `create_app(...)` builds the FastAPI app."""

from ..accounts import Role
from .app import create_app
from .status import RegistryStatus, StatusProvider

__all__ = ["RegistryStatus", "Role", "StatusProvider", "create_app"]
