"""What the tests share: loopback servers that misbehave on cue, process and queue helpers."""
