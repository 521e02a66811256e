"""Forwarding upstream: the gateway delivers what it archived to provincial and national
platforms over HJ 212, each target with its own durable cursor (see README.md here).

Its face: `ForwardTarget` (one `[[forward]]` entry), `check_targets`, `ForwardService` and
`Codec` (the HJ 212 codec it is given by the wiring).
"""

from .codec import Codec
from .config import ForwardTarget, check_targets
from .service import ForwardService

__all__ = ["Codec", "ForwardService", "ForwardTarget", "check_targets"]
