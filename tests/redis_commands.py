"""Record the Redis commands a piece of code sends (tests that count round trips)."""

from __future__ import annotations

import redis


def record_commands(monkeypatch) -> list[str]:
    """From now until `monkeypatch.undo()`, the name of every command sent to Redis, in order:
    plain calls, a WATCHing pipeline's immediate commands, and a pipeline's batch as one
    entry ("EXEC" for a MULTI/EXEC transaction, "PIPELINE" otherwise)."""
    sent: list[str] = []
    plain = redis.Redis.execute_command
    immediate = redis.client.Pipeline.immediate_execute_command
    execute = redis.client.Pipeline.execute

    def counted(self, *args, **options):
        sent.append(str(args[0]).upper())
        return plain(self, *args, **options)

    def counted_immediate(self, *args, **options):
        sent.append(str(args[0]).upper())
        return immediate(self, *args, **options)

    def counted_execute(self, *args, **options):
        sent.append("EXEC" if self.transaction else "PIPELINE")
        return execute(self, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", counted)
    monkeypatch.setattr(redis.client.Pipeline, "immediate_execute_command", counted_immediate)
    monkeypatch.setattr(redis.client.Pipeline, "execute", counted_execute)
    return sent
