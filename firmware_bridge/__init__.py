"""The probe link: wire protocol v1 (see PROTOCOL.md), its codec and a virtual probe.

``wire`` frames messages, ``decoder`` turns a byte stream back into verified messages,
``payloads`` converts payloads to and from :mod:`sonoedge.types`, ``virtual_probe`` plays a
probe, and ``c/`` holds the C99 reference implementation for firmware authors.
"""

from sonoedge.firmware_bridge.decoder import Decoder
from sonoedge.firmware_bridge.wire import MAGIC, VERSION, Encoder, Flags, Message, MessageType

__all__ = ["MAGIC", "VERSION", "Decoder", "Encoder", "Flags", "Message", "MessageType"]
