"""Where bytes come from: one module per URL scheme.

`http` (with `http_session` and `http_direct` under it) serves http and https, `file` serves file://,
`ftp` ftp:// and ftps://, `sftp` sftp:// (paramiko, imported for such URLs only). What
each scheme is asked for is the same: probe a URL (size, validator, advertised checksums, a file name) and
open a byte range of it; listing a prefix comes with the schemes that have prefixes (s3, gs, ftp, sftp).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from getm_tui.engine.sources.source import Source

# The module serving each scheme, imported on first use: `get https://...` never loads botocore,
# google-auth or paramiko. http(s) is http.py's probe and ranges with index_page.py's listing of directory
# pages.
_MODULES = {
    "http": "index_page",
    "https": "index_page",
    "s3": "s3",
    "gs": "gcs",
    "ftp": "ftp",
    "ftps": "ftp",
    "sftp": "sftp",
}
BUCKET_SCHEMES = ("s3", "gs")


def source_for(url: str) -> Source:
    """The Source of a validated URL's scheme (file:// is copied, not fetched: see sources/file.py)."""
    scheme = url.split(":", 1)[0].lower()
    module = importlib.import_module(f"getm_tui.engine.sources.{_MODULES[scheme]}")
    source: Source = module.SOURCE
    return source


def is_bucket(url: str) -> bool:
    """Whether the URL names an object or prefix of a bucket (s3://, gs://)."""
    return url.split(":", 1)[0].lower() in BUCKET_SCHEMES
