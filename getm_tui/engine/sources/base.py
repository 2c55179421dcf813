"""What authorizes a source's requests (Signer) and how a download may authenticate (Access).

Three things, per scheme: *probe* a URL (size, validator, the checksums known before the first byte, a file
name), *open a byte range* of it, and *list* a prefix or a tree (the schemes that have them). http(s) and
file:// are the first two; s3:// and gs:// add listing and ride the HTTP transport for the bytes, with a
`Signer` that authorizes each request when it is sent: a download of many hours never outlives a
signature, and workers keep their keep-alive connections from part to part. A scheme with a transport of
its own (FTP, SFTP) implements the same three over its connections.

A Signer travels to the fetch workers inside each task, pickled over the worker's pipe: credentials live
in memory only, never in a file, an argument list or the environment of a worker, and a signer's repr
shows none of them. Pickling one takes a fresh snapshot of its credentials (refreshed when they are about
to expire), so each part's requests are signed with credentials that are current when the part starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from getm_tui.engine.sources.http_session import HTTPSettings, Reply


class Signer(Protocol):
    """Authorizes one request of a source's transport at the moment it is sent."""

    def sign(self, method: str, url: str, headers: dict[str, str]) -> dict[str, str]:
        """The header fields to add to a request of `method` for `url` that sends `headers`."""
        ...


class Transport(Protocol):
    """Opens byte ranges of one probed file over a scheme's own connections (FTP, SFTP), in whichever
    process a part is fetched: it travels pickled inside each task, like a Signer, credentials included
    (memory only; its repr shows none of them). A Reply it returns reads its body with `raw.readinto`.
    """

    def open(self, first: int, end: int | None, settings: HTTPSettings) -> Reply:
        """Bytes [first, end) of the file (to its end when None); RemoteChanged when the file's size or
        modification time is no longer the probe's."""
        ...


@dataclass(frozen=True)
class Access:
    """How a download authenticates: to a bucket with the cloud's standard credential chain, or not at
    all (`anonymous`: public buckets, and what happens when no credentials exist); to an FTP or SFTP
    server with what the config says (the URL's user:password and ~/.netrc come first for FTP)."""

    anonymous: bool = False
    # FTP over TLS when the URL is ftp://: "auto" asks AUTH TLS before a user's password is sent and goes
    # on in plain text when the server refuses (anonymous logins stay plain), "require" asks on every login
    # and fails when refused, "off" never asks (ftps:// is implicit TLS). See sources/ftp_client.py.
    ftp_tls: str = "auto"
    # SFTP: a private key file (else the agent's keys and ~/.ssh's defaults), a password (else the URL's),
    # the known_hosts file, and what to do with a host it does not list: "reject", "accept" or "add".
    sftp_key_file: str = ""
    sftp_password: str = field(default="", repr=False)
    sftp_known_hosts: str = "~/.ssh/known_hosts"
    sftp_host_keys: str = "reject"
