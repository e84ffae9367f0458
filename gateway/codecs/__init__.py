"""Device codecs, one module per vendor model, found by the registry without a central list.

Adding a vendor is one module here exposing `CODEC = Codec(model=..., ...)` and one test
file; `codec_for(model)` finds it by the `model` the site file names.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from gateway.codecs.base import (
    MAX_PAYLOAD_BYTES,
    Codec,
    CodecError,
    DecodeContext,
    Decoded,
    Reason,
)

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "Codec",
    "CodecError",
    "DecodeContext",
    "Decoded",
    "Reason",
    "codec_for",
    "registry",
]


@cache
def registry() -> dict[str, Codec]:
    """Every codec module's `CODEC`, keyed by model name."""
    found: dict[str, Codec] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        codec = getattr(module, "CODEC", None)
        if isinstance(codec, Codec):
            if codec.model in found:
                msg = f"two codecs claim model {codec.model!r}"
                raise RuntimeError(msg)
            found[codec.model] = codec
    return found


def codec_for(model: str) -> Codec | None:
    """The codec of a device model, or None when no module decodes it."""
    return registry().get(model)
