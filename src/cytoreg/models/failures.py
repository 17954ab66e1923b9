"""Classifying an API failure: worth a retry (``TransientError``), this request only
(``PermanentError``), or the whole model (``FatalError``: stop its requests at once).

Shared by the OpenAI and Gemini adapters so that a bad key, an unknown model, a host that does
not resolve or a port nobody listens on cost one request, not a retry loop per sample. Messages
name the endpoint and the fix, never the key."""
from __future__ import annotations

import errno
import socket
from urllib.parse import urlsplit

from cytoreg.models.base import FatalError, PermanentError, TransientError

_UNKNOWN_MODEL = ("model_not_found", "does not exist", "not found", "unknown model", "no such model",
                  "is not supported", "not_found")


def scrub(text: str, secret: str | None) -> str:
    """Remove the key from a server's message (some echo it back)."""
    if secret and len(secret) >= 8:
        text = text.replace(secret, "***")
    return text


def brief(message: str, limit: int = 300) -> str:
    """A server's error text fit for one line: an HTML page (a proxy's or gateway's error page) becomes
    its title or its first words, whitespace is collapsed, and the rest is counted, not printed."""
    import html
    import re

    text = message or ""
    if re.search(r"<(!doctype|html|head|body|title)\b", text[:2000], re.IGNORECASE):
        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
        body = re.sub(r"<(script|style)\b.*?</\1>", " ", text, flags=re.IGNORECASE | re.DOTALL)
        text = "HTML page: " + html.unescape(title.group(1) if title else re.sub(r"<[^>]+>", " ", body))
    text = " ".join(text.split())
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit} more characters)"


def http_failure(status: int, message: str, *, model: str, endpoint: str, key_env: str,
                 retry_after: float | None = None, code: str | None = None) -> Exception:
    """The exception for an HTTP error status from ``endpoint`` serving ``model``."""
    where = f"HTTP {status} from {endpoint}"
    message = brief(message)
    low = f"{message} {code or ''}".lower()
    if status == 429 and "insufficient_quota" in low:
        return FatalError(f"{where} (quota exhausted): {message}", "HTTP 429 quota",
                          "the account behind the key has no quota left; add credit or use another key")
    if status in (408, 409, 429) or status >= 500:
        return TransientError(f"HTTP {status}: {message}", retry_after, status)
    if status == 401 or (status == 400 and ("api key not valid" in low or "api_key_invalid" in low)):
        return FatalError(f"{where} (authentication failed): {message}", f"HTTP {status} auth",
                          f"check the API key in the environment variable {key_env} (or params.api_key_env); "
                          "it is read from the environment and never written to disk")
    if status == 403:
        return FatalError(f"{where} (permission denied): {message}", "HTTP 403",
                          f"the key in {key_env} has no access to model '{model}' here; check the account's "
                          "permissions or pick a model it may use")
    if status == 404 or (status in (400, 422) and "model" in low and any(w in low for w in _UNKNOWN_MODEL)):
        return FatalError(f"{where} (model or endpoint not found): {message}", f"HTTP {status} not found",
                          f"check params.model ('{model}') against the models the server lists, and "
                          "params.base_url (an OpenAI-compatible URL usually ends in /v1)")
    if status in (400, 422):
        return PermanentError(f"HTTP {status} (invalid request): {message}", f"HTTP {status}")
    return FatalError(f"{where}: {message}", f"HTTP {status}",
                      "the server refuses these requests; check params.base_url and the model spec")


def _causes(exc: BaseException):
    """The exception, its causes and contexts, and exceptions held in their args."""
    seen, todo = set(), [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [e.__cause__, e.__context__] + [a for a in getattr(e, "args", ()) if isinstance(a, BaseException)]


def connection_failure(exc: BaseException, *, endpoint: str) -> Exception:
    """Host not found / connection refused are fatal; timeouts and resets are worth a retry."""
    host = urlsplit(endpoint).netloc or endpoint
    for e in _causes(exc):
        if isinstance(e, socket.gaierror) or "Name or service not known" in str(e) \
                or "nodename nor servname" in str(e):
            return FatalError(f"cannot resolve the host of {endpoint} (DNS failure: {e})", "DNS failure",
                              "check the host name in params.base_url (or the variable params.base_url_env "
                              "names) and your network")
        if isinstance(e, ConnectionRefusedError) or getattr(e, "errno", None) == errno.ECONNREFUSED:
            return FatalError(f"connection refused by {host} ({endpoint})", "connection refused",
                              "start the server, or correct the host and port in params.base_url")
    return TransientError(f"{type(exc).__name__}: {exc}", None, None, kind=type(exc).__name__)


def remote_host(base_url: str | None) -> str | None:
    """The host of a provider's endpoint; None for no URL or a server of your own (loopback,
    private network, ``localhost``, a single-label or ``.local`` name), whose port may change."""
    if not base_url:
        return None
    import ipaddress

    host = (urlsplit(base_url).hostname or "").lower()
    if host in ("", "localhost") or "." not in host or host.endswith((".local", ".localhost", ".internal")):
        return None
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    return None if (ip.is_loopback or ip.is_private or ip.is_link_local) else host
