"""Test-only roles plugged in through ``testing.role_overrides``."""

from __future__ import annotations

from typing import Any

from actors.base import CommandError, RoleActor
from messages import BookTop


class IdleActor(RoleActor):
    """Heartbeats and does nothing else: for runtime tests."""

    subscriptions = ("book.",)

    def _handle_book_top(self, msg: BookTop) -> None:
        self.ctx.count("books")


class InboxIdleActor(IdleActor):
    has_inbox = True


class CrashAtStartActor(RoleActor):
    def on_start(self) -> None:
        raise RuntimeError("crash at start (test)")


class CommandActor(RoleActor):
    has_inbox = True

    def on_command(self, command: str, args: dict[str, Any]) -> Any:
        if command == "echo":
            return dict(args)
        raise CommandError("unknown_command", command)
