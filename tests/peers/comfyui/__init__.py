"""A ComfyUI 0.33 emulator (HTTP + websocket) on 127.0.0.1, faithful to the recordings in ``transcripts/``."""

from .faults import Faults
from .frames import decode_binary
from .records import HttpRecord, WsRecord
from .server import ComfyEmulator, EmulatorConfig

__all__ = ["ComfyEmulator", "EmulatorConfig", "Faults", "HttpRecord", "WsRecord", "decode_binary"]
