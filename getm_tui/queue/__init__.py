"""The store: the persistent queue of download jobs, its states and schema, the SQLite backend, and the
salvage of a damaged SQLite file. Nothing here imports the runner or a front end."""
