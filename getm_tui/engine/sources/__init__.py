"""Where bytes come from: one module per URL scheme.

`http` (with `http_session` and `http_direct` under it) serves http and https, `file` serves file://. What
each scheme is asked for is the same: probe a URL (size, validator, advertised checksums, a file name) and
open a byte range of it; listing a prefix comes with the schemes that have prefixes (s3, gs, ftp, sftp).
"""
