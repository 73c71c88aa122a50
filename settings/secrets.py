"""Secrets inside URLs: percent-encoding credentials into them, masking them out of them."""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import quote, unquote_plus, urlsplit, urlunsplit

__all__ = ["mask_url", "mask_urls", "url_component", "url_host"]

MASK: Final = "***"
# Query parameters asyncpg (libpq) and redis-py read a password from; compared in lower case.
SECRET_QUERY_KEYS: Final = frozenset({"password", "sslpassword"})
URL_IN_TEXT: Final = re.compile(r"[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)


def url_component(value: str) -> str:
    """``value`` percent-encoded for a URL's userinfo or path (``p@ss/w`` -> ``p%40ss%2Fw``)."""
    return quote(value, safe="")


def url_host(host: str) -> str:
    """``host`` as the host part of a URL: IPv6 addresses in brackets, the rest as given."""
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


def mask_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``: safe for logs and errors.

    Masks the userinfo password (``amqp://u:***@host/``) and the ``password`` and
    ``sslpassword`` query parameters (any case). A URL whose credentials were not
    percent-encoded (an ``@`` after the host) cannot be split reliably, so all of it but
    the scheme is masked; one that does not parse at all becomes ``***``.
    """
    try:
        parts = urlsplit(url)
        if "@" in parts.path or "@" in parts.query or "@" in parts.fragment:
            return f"{parts.scheme}://{MASK}" if parts.netloc else MASK
        netloc = parts.netloc
        if parts.password is not None:
            port = f":{parts.port}" if parts.port is not None else ""
            host = url_host(parts.hostname or "")
            netloc = f"{parts.username or ''}:{MASK}@{host}{port}"
    except ValueError:
        return MASK
    query = _mask_query(parts.query)
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def mask_urls(text: str) -> str:
    """Return ``text`` with every URL in it passed through ``mask_url``."""
    if "://" not in text:
        return text
    return URL_IN_TEXT.sub(lambda match: mask_url(match.group(0)), text)


def _mask_query(query: str) -> str:
    if not query:
        return query
    fields = []
    for field in query.split("&"):
        key, _, value = field.partition("=")
        secret = value and unquote_plus(key).lower() in SECRET_QUERY_KEYS
        fields.append(f"{key}={MASK}" if secret else field)
    return "&".join(fields)
