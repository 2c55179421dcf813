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

from dataclasses import dataclass
from typing import Protocol


class Signer(Protocol):
    """Authorizes one request of a source's transport at the moment it is sent."""

    def sign(self, method: str, url: str, headers: dict[str, str]) -> dict[str, str]:
        """The header fields to add to a request of `method` for `url` that sends `headers`."""
        ...


@dataclass(frozen=True)
class Access:
    """How a download authenticates to a bucket: with the cloud's standard credential chain, or not at
    all (`anonymous`: public buckets, and what happens when no credentials exist)."""

    anonymous: bool = False
