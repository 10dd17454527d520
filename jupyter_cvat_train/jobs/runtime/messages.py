"""Messages that quote what a client or a file gave us, without sending a huge input back."""

from __future__ import annotations

from typing import Any

SHOWN_CHARS = 100  # at most this much of a client's value is echoed in a message


def shown(value: Any, limit: int = SHOWN_CHARS) -> str:
    """``repr(value)`` cut to about ``limit`` characters, for echoing a client's value in
    a message without sending a huge input back."""
    text = repr(value) if not isinstance(value, (str, bytes)) or len(value) <= 4 * limit else repr(value[: 4 * limit])
    return text if len(text) <= limit else text[: limit - 3] + "..."
