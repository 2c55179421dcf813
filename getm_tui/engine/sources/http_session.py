"""How the engine's GETs go out: a Session per worker (or per coordinator), and the settings it follows.

Plain HTTP without a proxy goes over http.client connections the session keeps (http_direct.py); everything
else (TLS, a proxy, a ~/.netrc) through requests, imported on the first request that needs it. A Session
answers one GET with a Reply whose body is left unread: the callers read it straight into their buffers.
"""

from __future__ import annotations

import http.client
import os
import re
import sys
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from getm_tui.engine.sources.http_direct import Direct

USER_AGENT = "getm-tui/0.1"
# What a dropped, reset, timed-out or garbled connection raises, from a request or from reading its body
# (http.client's IncompleteRead on a truncated chunked body, and urllib3's errors once it is loaded):
# retried where caught. `except` reads the name when an exception arrives, so callers that name
# http_session.CONNECTION_ERRORS (or call connection_errors()) catch urllib3's errors from the moment
# urllib3 can raise any.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (OSError, http.client.HTTPException)
# requests' refusals of a URL it cannot prepare (empty until requests is loaded: nothing raises them).
BAD_URL_ERRORS: tuple[type[BaseException], ...] = ()


def _requests() -> Any:
    """requests (and urllib3), imported on the first request that needs them: TLS, a proxy, a ~/.netrc,
    or a URL that needs preparing. Their imports are a noticeable part of a short `getm-tui get`, and
    plain HTTP without a proxy goes over http.client (http_direct.py) and never needs them."""
    global CONNECTION_ERRORS, BAD_URL_ERRORS
    import requests
    import urllib3

    if not BAD_URL_ERRORS:
        CONNECTION_ERRORS = (OSError, urllib3.exceptions.HTTPError, http.client.HTTPException)
        exc = requests.exceptions
        BAD_URL_ERRORS = (exc.InvalidURL, exc.MissingSchema, exc.InvalidSchema)
    return requests


def connection_errors(*more: type[BaseException]) -> tuple[type[BaseException], ...]:
    """CONNECTION_ERRORS as they are now, with `more`: for an `except` clause, which evaluates it when an
    exception arrives, so urllib3's errors are caught once requests has been loaded."""
    return (*more, *CONNECTION_ERRORS)


@dataclass(frozen=True)
class HTTPSettings:
    """How to talk to servers; passed to worker processes, so plain values only."""

    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    verify_tls: bool = True
    max_redirects: int = 10
    allow_insecure_redirect: bool = False
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.connect_timeout, self.read_timeout)


class Reply:
    """The part of an HTTP response the engine reads: status, headers, the raw body (urllib3's response or
    a direct.Body: both read through `_fp`, the http.client response), and the URL it came from. requests'
    Response would cost a header copy and a cookie-jar pass on every request."""

    __slots__ = ("raw", "url", "status_code", "reason", "headers")

    def __init__(self, raw: Any, url: str) -> None:
        self.raw = raw
        self.url = url
        self.status_code = raw.status
        self.reason = raw.reason
        self.headers = raw.headers  # case-insensitive, repeated fields joined with ", " (as requests does)

    @property
    def is_redirect(self) -> bool:
        return self.status_code in _REDIRECTS and "Location" in self.headers

    def close(self) -> None:
        """Drop the connection (its body may be unread: it cannot serve another request)."""
        self.raw.close()
        self.raw.release_conn()


_REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class _Origin:
    """A session's answers for one origin (and TLS setting): what requests would look up per request."""

    verify: Any
    proxies: dict[str, str]
    cert: Any
    authorization: str | None  # from ~/.netrc
    direct: tuple[str, int] | None  # plain HTTP without a proxy: (host, port) for http_direct.py


# What every GET sends: requests' default fields, but identity encoding (the file is saved as served).
_BASE_HEADERS = {
    "User-Agent": USER_AGENT,
    "Accept-Encoding": "identity",
    "Accept": "*/*",
    "Connection": "keep-alive",
}
# A URL that requests' prepare_url would send unchanged: http, a lower-case host name or IPv4 address, a
# port without leading zeros, a path (and query) of characters that need no quoting, no fragment, and
# (checked apart) no dot segment and no %-escape that requests or urllib3 would rewrite.
_TARGET_CHARS = r"A-Za-z0-9\-._~!$&'()*+,;=:@/%"
_PLAIN_URL = re.compile(
    r"http://(?P<host>[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*)"
    r"(?::(?P<port>[1-9][0-9]{0,4}))?"
    rf"(?P<target>/[{_TARGET_CHARS}]*(?:\?[{_TARGET_CHARS}?]+)?)"
)
_DOT_SEGMENT = re.compile(r"/\.\.?(?:/|\?|$)")
_ESCAPE = re.compile(r"%([0-9A-F]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _plain_target(url: str) -> tuple[str, int, str] | None:
    """(host, port, request target) of a URL requests would send as it is over plain HTTP, else None."""
    m = _PLAIN_URL.fullmatch(url)
    if m is None:
        return None
    target = m["target"]
    if _DOT_SEGMENT.search(target.split("?", 1)[0]):
        return None
    # Every % must start upper-case hex of a character that stays escaped: requests decodes escaped
    # unreserved characters and urllib3 upper-cases hex digits.
    escapes = _ESCAPE.findall(target)
    if len(escapes) != target.count("%") or any(chr(int(e, 16)) in _UNRESERVED for e in escapes):
        return None
    port = int(m["port"] or 80)
    return (m["host"], port, target) if port <= 65535 else None


def _environment_is_plain() -> bool:
    """Whether requests would add nothing to a plain-HTTP request here: no proxy variable (on Linux,
    all that its proxy lookup reads) and no netrc file (what its credential lookup reads)."""
    if not sys.platform.startswith("linux"):
        return False
    for name, value in os.environ.items():
        lower = name.lower()
        if value and lower.endswith("_proxy") and lower != "no_proxy":
            return False
    netrc = os.environ.get("NETRC")
    places = (netrc,) if netrc is not None else ("~/.netrc", "~/_netrc")
    return not any(os.path.exists(os.path.expanduser(place)) for place in places)


class Session:
    """Sends the engine's GETs: plain HTTP without a proxy over http.client connections it keeps
    (`direct`), everything else through a requests Session (its adapters keep the connection pools,
    its settings the TLS and proxy rules) made on first need.

    requests looks the environment up again for each request (proxy variables, REQUESTS_CA_BUNDLE,
    ~/.netrc: walking os.environ and stat'ing the file), merges settings, runs hooks and builds a Response
    with a cookie pass, a large share of what a small file from the queue costs. The environment of a
    process does not change under its downloads, so its answers are kept per origin for the session's
    life, and `fetch` goes straight to the adapter's pool, or for plain HTTP without a proxy to
    http.client. Cookies are not kept (like curl and aria2c without a cookie file).
    """

    def __init__(self, pool_size: int = 4) -> None:
        self.headers: dict[str, str] = dict(_BASE_HEADERS)
        self.verify = True
        self._pool_size = pool_size
        self._requests: Any = None  # the requests Session, once a request needs it
        self._plain_environment: bool | None = None
        self._origins: dict[tuple[str, str, bool], _Origin] = {}
        self._timeouts: dict[tuple[float, float], Any] = {}
        self._direct = Direct(pool_size)

    def close(self) -> None:
        self._direct.close()
        if self._requests is not None:
            self._requests.close()

    def _requests_session(self) -> Any:
        if self._requests is None:
            requests = _requests()
            session = requests.Session()
            from getm_tui.engine.sources.http_pools import adapter as racing_adapter

            adapter = racing_adapter(4, self._pool_size)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.verify = self.verify
            self._requests = session
        return self._requests

    def _origin(self, url: str, verify_tls: bool) -> _Origin:
        """What the environment says about this prepared URL's origin, looked up once per session."""
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc, verify_tls)
        found = self._origins.get(key)
        if found is None:
            session = self._requests_session()
            import requests
            import urllib3

            # verify comes from the settings: requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override a
            # session's verify=False, which would silently turn --insecure off.
            env = session.merge_environment_settings(url, {}, True, verify_tls, None)
            authorization = None
            credential = requests.utils.get_netrc_auth(url) if session.trust_env else None
            if credential:
                user, password = credential
                authorization = urllib3.util.make_headers(basic_auth=f"{user}:{password}")["authorization"]
            direct = self._direct_route(url, env["proxies"])
            found = _Origin(env["verify"], env["proxies"], env["cert"], authorization, direct)
            self._origins[key] = found
        return found

    @staticmethod
    def _direct_route(url: str, proxies: dict[str, str]) -> tuple[str, int] | None:
        """(host, port) when this prepared URL goes over plain HTTP without a proxy, else None."""
        requests = _requests()
        import urllib3

        if urlsplit(url).scheme != "http" or requests.utils.select_proxy(url, proxies):
            return None
        where = urllib3.util.parse_url(url)
        return (where.host, where.port or 80) if where.host else None

    def fetch(
        self, url: str, headers: dict[str, str] | None, settings: HTTPSettings, method: str = "GET"
    ) -> Reply:
        """One GET (or HEAD), not following redirects, its body left unread. Raises requests', urllib3's
        and http.client's errors, and OSError."""
        plain = self._plain_request(url, headers)
        if plain is not None:
            return Reply(self._direct.get(*plain, settings.timeout, method), url)
        sent = dict(self.headers)
        requests = _requests()
        import urllib3

        req = requests.PreparedRequest()
        req.prepare_url(url, None)
        req.method = "GET"
        origin = self._origin(req.url, settings.verify_tls)
        if origin.authorization and "Authorization" not in sent:
            sent["Authorization"] = origin.authorization
        if headers:
            sent.update(headers)
        if origin.direct is not None:
            return Reply(self._direct.get(*origin.direct, req.path_url, sent, settings.timeout, method), url)
        if not settings.verify_tls:
            # Per request, not only per session: a worker's session may serve a job with --insecure after
            # one without, and urllib3 would print a warning per request on the terminal the runner uses.
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        verify, proxies, cert = origin.verify, origin.proxies, origin.cert
        req.headers = requests.structures.CaseInsensitiveDict(sent)
        adapter = self._requests_session().get_adapter(req.url)
        try:
            conn = adapter.get_connection_with_tls_context(req, verify, proxies=proxies, cert=cert)
        except urllib3.exceptions.LocationValueError as e:
            raise requests.exceptions.InvalidURL(e) from None
        adapter.cert_verify(conn, req.url, verify, cert)
        timeout = self._timeouts.get(settings.timeout)
        if timeout is None:
            timeout = urllib3.Timeout(connect=settings.connect_timeout, read=settings.read_timeout)
            self._timeouts[settings.timeout] = timeout
        raw = conn.urlopen(
            method=method,
            url=adapter.request_url(req, proxies),
            body=None,
            headers=sent,
            redirect=False,
            assert_same_host=False,
            preload_content=False,
            decode_content=False,
            retries=adapter.max_retries,
            timeout=timeout,
        )
        return Reply(raw, url)

    def _plain_request(
        self, url: str, headers: dict[str, str] | None
    ) -> tuple[str, int, str, dict[str, str]] | None:
        """(host, port, path, header fields) of a GET that can go over http.client as it is, else None."""
        target = _plain_target(url)
        if target is None:
            return None
        if self._plain_environment is None:
            self._plain_environment = _environment_is_plain()
        if not self._plain_environment:
            return None
        sent = dict(self.headers)
        if headers:
            sent.update(headers)
        return (*target, sent)

    def send_ahead(self, url: str, headers: dict[str, str] | None, settings: HTTPSettings) -> bool:
        """Send the GET that a later `fetch(url, headers, settings)` answers with its response, when it
        goes over plain HTTP (see direct.Direct.send_ahead). False when it does not (nothing was sent);
        raises what connecting and sending raise."""
        plain = self._plain_request(url, headers)
        if plain is None:
            return False
        self._direct.send_ahead(*plain, settings.timeout)
        return True

    def sockets(self) -> list[int]:
        """Descriptors of the requests sent ahead."""
        return self._direct.sockets()


def make_session(settings: HTTPSettings, pool_size: int = 4) -> Session:
    session = Session(pool_size)
    session.verify = settings.verify_tls
    for name, value in settings.headers:
        # A user's field replaces a default of the same name in any case, as requests' headers do.
        for default in [k for k in session.headers if k.lower() == name.lower()]:
            del session.headers[default]
        session.headers[name] = value
    return session
