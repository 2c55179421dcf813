"""urlopen's stream: a URL read in order, as memoryviews, verified at its end.

Small files (and `concurrency=None`) are read in this process over one connection, like download()'s
inline path; larger ones through fetch workers into shared memory, taken in order from the transfer's
ring (Transfer.next_in_order) and handed out without a copy.
"""

from __future__ import annotations

from collections.abc import Iterator

from getm_tui.engine import retry
from getm_tui.engine.checksum import ChecksumArg, Outcome, expected_from, verdict, verifier_for
from getm_tui.engine.crc import whole_crc
from getm_tui.engine.errors import DownloadError, IntegrityError, RemoteChanged, Retryable, UsageError
from getm_tui.engine.inline import INLINE_LIMIT, READ_CHUNK
from getm_tui.engine.options import UNSET, NotGiven, Options, with_keywords
from getm_tui.engine.parallel import start_transfer
from getm_tui.engine.sources import http, source_for
from getm_tui.engine.sources.http_session import Reply, connection_errors, make_session
from getm_tui.engine.transfer import Transfer
from getm_tui.engine.urls import redact, validate
from getm_tui.engine.workers import WorkerPool


class Reader:
    """A readable stream of a URL; `read()` returns memoryviews, into shared memory when workers fetch.

    Each view stays valid until the next `read()`; release it (or let it go) before `close()`. The bytes
    are verified against any checksum the server advertises, and IntegrityError is raised at the end
    of the stream on a mismatch.
    """

    def __init__(
        self,
        url: str,
        concurrency: int | None | NotGiven = UNSET,
        checksum: ChecksumArg = None,
        options: Options | None = None,
    ) -> None:
        """`concurrency` and `options` as download() takes them."""
        self.opts = with_keywords(options, concurrency=concurrency)
        self.url = validate(url)
        if self.url.lower().startswith("file:"):
            raise UsageError("urlopen takes http(s) URLs; open local files directly")
        self.session = make_session(self.opts.http)
        self.pool: WorkerPool | None = None
        self.transfer: Transfer | None = None
        self._resp: Reply | None = None
        self._pending = 0  # bytes of the transfer's last view handed out
        self._buf = memoryview(bytearray(READ_CHUNK))
        self._pos = 0
        self._attempt = 0
        self._failed_at = 0
        self._eof = False
        self.closed = False
        expected = expected_from(checksum)
        self.outcomes: list[Outcome] = []  # once the stream has ended
        if self.opts.concurrency:
            self.pool = WorkerPool(self.opts.http)
        try:
            self.probe, resp = retry.with_retries(
                lambda: source_for(self.url).probe(self.session, self.url, self.opts.http, self.opts.access),
                self.opts.retries,
                self.opts.retry_base,
                None,
                self.opts.retry_cap,
            )
            self.verifier = verifier_for(expected, self.probe.expected, self.probe.size)
            if self.pool is None or (self.probe.size is not None and self.probe.size <= INLINE_LIMIT):
                self._resp = resp
            else:
                resp.close()
                self.transfer = start_transfer(
                    self.pool, self.probe, None, None, self.verifier, self.opts, None
                )
        except BaseException:
            self.close()
            raise

    @property
    def size(self) -> int | None:
        return self.probe.size

    def read(self, size: int = -1) -> memoryview:
        if self.closed:
            raise ValueError("read from a closed Reader")
        self._release_pending()
        if self._eof:
            return memoryview(b"")
        view = self._read_inline(size) if self.transfer is None else self._read_shared(size)
        if not len(view):
            self._eof = True
            self._verify()
        return view

    def _read_inline(self, size: int) -> memoryview:
        want = READ_CHUNK if size < 0 else min(size, READ_CHUNK)
        if self.probe.size is not None:
            want = min(want, self.probe.size - self._pos)
        if want <= 0:
            return memoryview(b"")
        while True:
            try:
                if self._resp is None:
                    self._resp = self._reopen()
                n = http.body_reader(self._resp)(self._buf[:want])
                if not n and self.probe.size is not None:
                    raise Retryable(f"connection closed after {self._pos} of {self.probe.size} bytes")
                break
            except connection_errors(Retryable) as e:
                # Like download()'s inline path: continue with a range request where the fault hit.
                if self._resp is not None:
                    self._resp.close()
                    self._resp = None
                self._attempt += 1
                self._failed_at = self._pos
                retry.back_off(
                    self._attempt, e, self.opts.retries, self.opts.retry_base, None, self.opts.retry_cap
                )
        self._pos += n
        if self._attempt and self._pos - self._failed_at >= retry.PROGRESS_FORGIVES:
            self._attempt = 0  # retries count across reads: a server dropping every few KiB must fail
        view = self._buf[:n]
        self.verifier.update(view)
        return view

    def _reopen(self) -> Reply:
        """A request for the rest of the body after a fault; bytes already handed out cannot be taken back."""
        if self._pos and not self.probe.ranges:
            raise DownloadError(f"connection lost after {self._pos} bytes and the server cannot resume")
        try:
            return http.open_from(self.session, self.probe, self.opts.http, self._pos)
        except RemoteChanged:
            raise DownloadError("the remote file changed while it was being read") from None

    def _read_shared(self, size: int) -> memoryview:
        assert self.transfer is not None
        view = self.transfer.next_in_order(size)
        self.verifier.update(view)
        self._pending = len(view)
        return view

    def _release_pending(self) -> None:
        if self._pending and self.transfer is not None:
            self.transfer.taken(self._pending)
        self._pending = 0

    def _verify(self) -> None:
        crc = whole_crc(self.transfer.parts) if self.transfer else None
        outcomes = self.verifier.finish(crc)
        if verdict(outcomes) == "mismatch":
            bad = "; ".join(
                f"{o.expected.algorithm}: expected {o.expected.value}, computed {o.computed}"
                for o in outcomes
                if not o.ok
            )
            raise IntegrityError(f"checksum mismatch for {redact(self.url)}: {bad}")
        self.outcomes = outcomes

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.transfer is not None:
            if not self.transfer.finished:
                self.transfer.cancel(grace=1.0)
            self.transfer.close()
        if self._resp is not None:
            self._resp.close()
        if self.pool is not None:
            self.pool.close()
        self.session.close()

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[memoryview]:
        while True:
            view = self.read()
            if not len(view):
                return
            yield view
