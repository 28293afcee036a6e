"""Sending one webhook request safely.

The host is resolved at send time, every address it resolves to is checked, and the
connection goes to the checked address itself (the Host header and TLS SNI/certificate
still name the host), so a DNS answer that changes between the check and the connection
(rebinding) cannot redirect it. Refused by default: loopback, private, link-local (cloud
metadata), unspecified, reserved, shared and multicast addresses, IPv4-mapped IPv6 forms of
them included, unless the host is listed in CUSTODY_WEBHOOK_ALLOWED_HOSTS. HTTPS is
required except for listed hosts. Redirects are never followed; timeouts and the response
size are bounded."""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3
from django.conf import settings

from core.errors import InvalidParameterValue

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refused(Exception):
    """The destination is not allowed; the message says why (never retried)."""


class Unresolvable(Exception):
    """The host name does not resolve (now): a delivery fails and is retried."""


@dataclass
class Target:
    scheme: str
    host: str
    port: int
    path: str


@dataclass
class Result:
    status: int | None = None
    body: str = ""
    error: str = ""
    latency_ms: int = 0
    # Refused or malformed destination: retrying cannot help.
    permanent: bool = False

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _allowed_entries() -> tuple[set[str], list[ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    names, networks = set(), []
    for entry in settings.CUSTODY_WEBHOOK_ALLOWED_HOSTS:
        entry = entry.strip().lower()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
        except ValueError:
            names.add(entry.rstrip("."))
    return names, networks


def _unmapped(ip: IPAddress) -> IPAddress:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
    return ip


def forbidden_reason(ip: IPAddress) -> str | None:
    """Why a connection to `ip` is refused by default, or None for a public address."""
    ip = _unmapped(ip)
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_link_local:
        return "a link-local address (cloud metadata lives there)"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_private or not ip.is_global:
        return "a private or reserved address"
    return None


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def host_is_listed(host: str) -> bool:
    """Listed by name, or an address literal inside a listed network."""
    names, networks = _allowed_entries()
    if host in names:
        return True
    ip = _literal(host)
    return ip is not None and any(_unmapped(ip) in n or ip in n for n in networks)


def parse_url(url: str) -> Target:
    """Check a webhook URL's form (at creation and before each delivery): http(s), a host,
    no credentials, HTTPS unless the host is listed. Raises InvalidParameterValue."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidParameterValue(f"Invalid webhook URL {url[:200]!r}: {exc}.") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidParameterValue(
            f"Invalid webhook URL scheme {parts.scheme!r}: use https:// (or http:// for a host "
            "listed in CUSTODY_WEBHOOK_ALLOWED_HOSTS)."
        )
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise InvalidParameterValue(f"Webhook URL {url[:200]!r} has no host name.")
    if _literal(host) is None:
        try:
            host.encode("idna")
        except UnicodeError as exc:
            raise InvalidParameterValue(
                f"Webhook URL {url[:200]!r} has an invalid host name: {exc}."
            ) from None
    if parts.username is not None or parts.password is not None:
        raise InvalidParameterValue(
            "Webhook URLs must not carry credentials (user:password@); use the signing secret."
        )
    if scheme == "http" and not host_is_listed(host):
        raise InvalidParameterValue(
            f"Webhook URL {url[:200]!r} must use https://: plain http:// is only for hosts an "
            "administrator listed in CUSTODY_WEBHOOK_ALLOWED_HOSTS."
        )
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(scheme, host, port or (443 if scheme == "https" else 80), path)


def resolve(target: Target) -> IPAddress:
    """The address to connect to: every address the host resolves to must be allowed."""
    literal = _literal(target.host)
    try:
        addresses = (
            [literal]
            if literal is not None
            else [
                ipaddress.ip_address(info[4][0].split("%", 1)[0])
                for info in socket.getaddrinfo(
                    target.host, target.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
                )
            ]
        )
    except socket.gaierror as exc:
        raise Unresolvable(f"cannot resolve {target.host!r}: {exc.strerror or exc}") from None
    if not addresses:
        raise Unresolvable(f"{target.host!r} resolves to no address")
    names, networks = _allowed_entries()
    listed_name = target.host.lower() in names
    for ip in addresses:
        if listed_name or any(_unmapped(ip) in n or ip in n for n in networks):
            continue
        reason = forbidden_reason(ip)
        if reason is not None:
            raise Refused(
                f"{target.host!r} resolves to {ip}, {reason}; webhooks are not sent there "
                "unless the host is listed in CUSTODY_WEBHOOK_ALLOWED_HOSTS"
            )
    return addresses[0]


def check_destination(url: str) -> None:
    """At creation: the URL's form, and its addresses if the name resolves now (each
    delivery checks them again). Raises InvalidParameterValue."""
    target = parse_url(url)
    try:
        resolve(target)
    except Unresolvable:
        pass  # may resolve later; every delivery checks
    except Refused as exc:
        raise InvalidParameterValue(f"Webhook URL refused: {exc}.") from None


def post(url: str, body: bytes, headers: dict[str, str]) -> Result:
    """POST `body` once; never raises for network trouble (the Result says what happened)."""
    started = time.monotonic()
    result = Result()
    try:
        target = parse_url(url)
        ip = resolve(target)
        default_port = 443 if target.scheme == "https" else 80
        host_header = target.host if ":" not in target.host else f"[{target.host}]"
        if target.port != default_port:
            host_header += f":{target.port}"
        timeout = urllib3.Timeout(
            connect=settings.CUSTODY_WEBHOOK_CONNECT_TIMEOUT,
            read=settings.CUSTODY_WEBHOOK_READ_TIMEOUT,
        )
        options = {"timeout": timeout, "retries": False, "maxsize": 1}
        if target.scheme == "https":
            pool = urllib3.HTTPSConnectionPool(
                str(ip),
                target.port,
                server_hostname=target.host,
                assert_hostname=target.host,
                cert_reqs="CERT_REQUIRED",
                **options,
            )
        else:
            pool = urllib3.HTTPConnectionPool(str(ip), target.port, **options)
        try:
            response = pool.urlopen(
                "POST",
                target.path,
                body=body,
                headers={**headers, "Host": host_header},
                redirect=False,
                assert_same_host=False,
                preload_content=False,
            )
            result.status = response.status
            result.body = _bounded_text(response, started)
            if 300 <= response.status < 400:
                location = response.headers.get("Location", "")
                result.error = (
                    f"answered {response.status} (redirect to {location[:200]!r}); "
                    "redirects are not followed"
                )
            elif not result.ok:
                result.error = f"answered HTTP {response.status}"
            response.release_conn()
        finally:
            pool.close()
    except InvalidParameterValue as exc:
        result.error, result.permanent = exc.message, True
    except Refused as exc:
        result.error, result.permanent = f"refused: {exc}", True
    except Unresolvable as exc:
        result.error = str(exc)
    except urllib3.exceptions.HTTPError as exc:
        result.error = f"{type(exc).__name__}: {exc}"[:1000]
    except OSError as exc:
        result.error = f"{type(exc).__name__}: {exc}"[:1000]
    result.latency_ms = int((time.monotonic() - started) * 1000)
    return result


def _bounded_text(response, started: float) -> str:
    """At most CUSTODY_WEBHOOK_MAX_RESPONSE_BYTES of the body, read within the read
    timeout overall (a receiver trickling bytes does not hold the worker)."""
    limit = settings.CUSTODY_WEBHOOK_MAX_RESPONSE_BYTES
    deadline = (
        started + settings.CUSTODY_WEBHOOK_CONNECT_TIMEOUT + settings.CUSTODY_WEBHOOK_READ_TIMEOUT
    )
    chunks, size = [], 0
    while size < limit and time.monotonic() < deadline:
        chunk = response.read(min(8192, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks).decode("utf-8", "replace")
