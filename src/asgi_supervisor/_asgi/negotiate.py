"""Content negotiation: does a request's ``Accept`` header prefer HTML to JSON?

Only `/tasks` asks, once per request, so the parse is plain and bounded rather than cached:
at most `_MAX_MEDIA_RANGES` ranges are read, whatever a client sends.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["prefers_html"]

_MAX_MEDIA_RANGES = 32


def prefers_html(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """True when the ``Accept`` headers rank ``text/html`` above ``application/json``.

    Each type gets the q-value of the most specific range that matches it (``text/html``,
    then ``text/*``, then ``*/*``). A tie, no ``Accept`` header, or ``*/*`` alone keeps JSON,
    the default for scripts and tools; a range with a malformed q-value is ignored.
    """
    accept = b",".join(value for name, value in headers if name == b"accept")
    if not accept:
        return False
    # (specificity, q) of the best range seen so far for each type.
    html: tuple[int, float] = (-1, 0.0)
    json: tuple[int, float] = (-1, 0.0)
    for media_range in accept.decode("latin-1").split(",")[:_MAX_MEDIA_RANGES]:
        media, *params = media_range.split(";")
        q = _q_value(params)
        if q is None:
            continue
        media = media.strip().lower()
        html = max(html, (_specificity(media, "text", "html"), q), key=lambda best: best[0])
        json = max(json, (_specificity(media, "application", "json"), q), key=lambda best: best[0])
    return html[1] > json[1]


def _q_value(params: list[str]) -> float | None:
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() != "q":
            continue
        value = value.strip()
        # RFC 9110's qvalue: 0 to 1 with at most three decimals; nan, 2.0 or a latin-1
        # superscript digit (which `isdigit` accepts and `float` refuses) are not.
        digits = value.replace(".", "", 1)
        if not digits or len(value) > 5 or not (digits.isascii() and digits.isdigit()):
            return None
        q = float(value)
        return q if q <= 1.0 else None
    return 1.0


def _specificity(media: str, type_: str, subtype: str) -> int:
    if media == f"{type_}/{subtype}":
        return 2
    if media == f"{type_}/*":
        return 1
    return 0 if media == "*/*" else -1
