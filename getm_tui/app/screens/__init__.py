"""The app's screens: the queue, the add dialog, the remove confirmation and a job's details."""
