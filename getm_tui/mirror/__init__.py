"""Mirrors: a remote tree (an HTTP index page, an s3:// or gs:// prefix, any source with a listing) kept
current under a local directory by queueing a job for each file that is new or changed.

`spec.py` what a mirror is (and the config's saved ones), `selection.py` which listed files it takes,
`compare.py` whether a local copy is current and which files are already queued, `sums.py` the checksums
published beside the data, `sync.py` one pass (list, select, queue), `prune.py` what `--delete` removes,
`status.py` the last pass of each saved mirror. The command is cli/mirror.py; the runner re-lists saved
mirrors on their interval (runner/mirrors.py). It imports the engine, the queue and the config, never the
runner or a front end.
"""
