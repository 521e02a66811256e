"""The raw frame archive: every HJ 212 frame received, per Beijing day, chained by SHA-256
(see README.md in this folder).

Its face: `FrameRecord` (what is kept of a frame), `FrameArchive` (the writer the handler
hands records to and the spool waits on), `ArchiveFull`, and `ArchiveSection` (`[archive]`).
"""

from .config import ArchiveSection
from .record import FrameRecord
from .writer import ArchiveFull, FrameArchive

__all__ = ["ArchiveFull", "ArchiveSection", "FrameArchive", "FrameRecord"]
