"""Spot tables and documents over ZeroMQ, safely.

The msgpack wire codec (no pickle), the spot-table (and grains) publisher, the Python subscriber, and
loopback-only replacements for bluesky's 0MQ Publisher, RemoteDispatcher and Proxy. The wire
format is documented in ``docs/stream.md``.
"""

from laue_live.stream._address import (
    LOOPBACK,
    CurveClient,
    CurveServer,
    curve_client_from_env,
    curve_server_from_env,
    normalize_address,
)
from laue_live.stream._codec import (
    DEFAULT_MAX_BYTES,
    TOPIC_DOC,
    TOPIC_GRAINS,
    TOPIC_HELLO,
    TOPIC_SPOTS,
    TOPIC_STATUS,
    WIRE_VERSION,
    Message,
    decode_grains,
    decode_message,
    decode_spot_table,
    dumps,
    encode_grains,
    encode_message,
    encode_spot_table,
    loads,
    make_loads,
    pack_payload,
    unpack_payload,
)
from laue_live.stream._dispatcher import SafeRemoteDispatcher
from laue_live.stream._proxy import SafeProxy
from laue_live.stream._publisher import DocumentPublisher, SpotPublisher
from laue_live.stream._subscriber import GrainFrame, SpotFrame, SpotSubscriber

__all__ = [
    "LOOPBACK",
    "CurveClient",
    "CurveServer",
    "curve_client_from_env",
    "curve_server_from_env",
    "normalize_address",
    "DEFAULT_MAX_BYTES",
    "TOPIC_DOC",
    "TOPIC_GRAINS",
    "TOPIC_HELLO",
    "TOPIC_SPOTS",
    "TOPIC_STATUS",
    "WIRE_VERSION",
    "Message",
    "decode_message",
    "decode_spot_table",
    "decode_grains",
    "dumps",
    "encode_grains",
    "encode_message",
    "encode_spot_table",
    "loads",
    "make_loads",
    "pack_payload",
    "unpack_payload",
    "SafeRemoteDispatcher",
    "SafeProxy",
    "DocumentPublisher",
    "SpotPublisher",
    "SpotFrame",
    "GrainFrame",
    "SpotSubscriber",
]
