"""SSH connections for sftp:// as the engine opens them: paramiko, host keys checked, a key or a password.

paramiko is synchronous, which fits the engine: a probe runs in the job's thread and each part in a fetch
worker process, each with a connection of its own. It is imported on the first sftp:// URL only.

Host keys are checked against a known_hosts file (`sftp_known_hosts`, default ~/.ssh/known_hosts), as
biomaj does, with a policy for a host the file does not list (`sftp_host_keys`): "reject" (the default,
as `ssh` with StrictHostKeyChecking), "accept" (for this connection, logged with the key's fingerprint),
or "add" (accept and append the key to the file, as StrictHostKeyChecking=accept-new). A host whose key
differs from the one listed is always refused: that is what an attack in the middle looks like.

Credentials: the configured key file (`sftp_key_file`), else the SSH agent's keys and ~/.ssh's usual
files; a password from the URL, else `sftp_password`. None of them reaches a message or a log line.
"""

from __future__ import annotations

import contextlib
import errno
import getpass
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from getm_tui.engine.errors import DownloadError, Retryable, UsageError
from getm_tui.engine.sources.http_session import HTTPSettings
from getm_tui.engine.sources.remote import Login, connection_errors

if TYPE_CHECKING:
    import paramiko

log = logging.getLogger(__name__)

HOST_KEY_POLICIES = ("reject", "accept", "add")


@dataclass(frozen=True)
class SSHServer:
    """One SFTP server as a client reaches it, and how it proves itself and we ourselves."""

    login: Login
    key_file: str
    password: str | None = field(repr=False)
    known_hosts: str
    host_keys: str


def _policy(kind: str, known_hosts: str) -> Any:
    import paramiko

    class Accept(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
            log.warning(
                "accepting the unknown host key of %s (%s %s) for this connection",
                hostname,
                key.get_name(),
                key.fingerprint,
            )

    class Add(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
            directory = os.path.dirname(known_hosts)
            if directory:
                os.makedirs(directory, mode=0o700, exist_ok=True)
            with open(known_hosts, "a", encoding="ascii") as f:
                f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
            log.warning(
                "added the host key of %s (%s %s) to %s",
                hostname,
                key.get_name(),
                key.fingerprint,
                known_hosts,
            )

    return {"reject": paramiko.RejectPolicy, "accept": Accept, "add": Add}[kind]()


def connect(
    server: SSHServer, settings: HTTPSettings, shown: str
) -> tuple[paramiko.SSHClient, paramiko.SFTPClient]:
    """A logged-in SSH client and its SFTP session; closed again when anything fails."""
    import paramiko

    if server.host_keys not in HOST_KEY_POLICIES:
        raise UsageError(
            f"sftp_host_keys must be one of {', '.join(HOST_KEY_POLICIES)}, not {server.host_keys!r}"
        )
    if server.key_file and not os.path.isfile(server.key_file):
        raise DownloadError(f"sftp_key_file {server.key_file!r} is not a file")
    client = paramiko.SSHClient()
    try:
        with errors(shown):
            if os.path.exists(server.known_hosts):
                client.load_host_keys(server.known_hosts)
            client.set_missing_host_key_policy(_policy(server.host_keys, server.known_hosts))
            client.connect(
                server.login.host,
                server.login.port,
                username=server.login.user or getpass.getuser(),
                password=server.password,
                key_filename=server.key_file or None,
                allow_agent=not server.key_file,
                look_for_keys=not server.key_file,
                timeout=settings.connect_timeout,
                banner_timeout=settings.connect_timeout,
                auth_timeout=settings.connect_timeout,
            )
            sftp = client.open_sftp()
            sftp.get_channel().settimeout(settings.read_timeout)  # type: ignore[union-attr]
    except BaseException:
        client.close()
        raise
    return client, sftp


@contextlib.contextmanager
def errors(shown: str) -> Iterator[None]:
    """paramiko's and the SFTP server's errors as the engine's (then the socket's:
    remote.connection_errors), naming the redacted URL `shown`."""
    import paramiko

    with connection_errors(shown):
        try:
            yield
        except paramiko.BadHostKeyException:
            raise DownloadError(
                f"the host key of {shown} is not the one known_hosts lists: refused (if the server's key was "
                "changed on purpose, remove its old line from known_hosts)"
            ) from None
        except paramiko.AuthenticationException:
            raise DownloadError(f"SFTP login refused by {shown} (check the user, key or password)") from None
        except paramiko.SSHException as e:
            if "not found in known_hosts" in str(e):
                raise DownloadError(
                    f"the host of {shown} is not in known_hosts: refused (sftp_host_keys = add accepts and "
                    "records it, or add it with ssh-keyscan)"
                ) from None
            line = str(e).splitlines()[0][:200] if str(e) else "connection closed"
            raise Retryable(f"SSH error from {shown}: {line}") from None
        except OSError as e:
            if e.errno == errno.ENOENT or isinstance(e, FileNotFoundError):
                raise DownloadError(f"no such file: {shown}") from None
            if e.errno == errno.EACCES or isinstance(e, PermissionError):
                raise DownloadError(f"permission denied: {shown}") from None
            raise


def close(client: paramiko.SSHClient, sftp: paramiko.SFTPClient | None) -> None:
    try:
        if sftp is not None:
            sftp.close()
    finally:
        client.close()
