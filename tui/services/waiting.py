"""Waiting for a person: a requester blocks on the store's change signal until its request is decided.

The command line (``approval request --wait``, ``approval wait``), the agent
hooks and the MCP server wait the same way: the requester owns its request
(a timeout expires it, SIGINT/SIGTERM/SIGHUP cancel it, and the lease it
belongs to is kept alive meanwhile); anyone else only watches.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

from core.errors import NotFound, Refused, TimedOut, TowerError
from core.ids import format_id

if TYPE_CHECKING:
    from core.models import Approval
    from store import Store

T = TypeVar("T")
_Handler = Callable[[int, FrameType | None], Any] | int | None


class Interrupted(TowerError):
    """The waiting process got SIGINT, SIGTERM or SIGHUP: exit 128 + the signal number."""

    code = "interrupted"

    def __init__(self, message: str, signum: int, data: dict | None = None):
        super().__init__(message, data=data)
        self.exit_code = 128 + signum


class SignalCatcher:
    """While entered, SIGINT, SIGTERM and SIGHUP cancel the guarded wait instead of killing us.

    A signal that arrives outside :meth:`guard` (while the request is being
    filed, or while it is being cancelled) is remembered and acted on at the
    next guard, so a request is never left half-filed and cleanup is never cut
    short by a second Ctrl-C.
    """

    # SIGHUP too: a closed terminal must not leave the request pending for nobody
    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._guarded: asyncio.Future[Any] | None = None
        self._previous: dict[int, _Handler] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def __enter__(self) -> SignalCatcher:
        loop = self._loop = asyncio.get_running_loop()
        for sig in self.SIGNALS:
            try:
                previous = signal.getsignal(sig)
                loop.add_signal_handler(sig, self._on_signal, sig)
                self._previous[sig] = previous
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread, or no signals here: waiting still works
        return self

    def __exit__(self, *exc_info: object) -> None:
        for sig, previous in self._previous.items():
            if self._loop is not None:
                self._loop.remove_signal_handler(sig)
            try:
                signal.signal(sig, previous)  # give asyncio.run its own Ctrl-C handling back
            except (TypeError, ValueError):
                pass
        self._previous.clear()

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else "signal"

    def _on_signal(self, signum: int) -> None:
        if self.signum is None:
            self.signum = signum
        if self._guarded is not None and not self._guarded.done():
            self._guarded.cancel()

    async def guard(self, coro: Awaitable[T]) -> T:
        """Await ``coro``; raises CancelledError if a signal arrives (or already arrived)."""
        task = asyncio.ensure_future(coro)
        self._guarded = task
        if self.signum is not None:
            task.cancel()
        try:
            return await task
        finally:
            self._guarded = None


async def keep_lease_alive(store: Store, lease_id: int) -> None:
    """While its requester waits for a person, heartbeat the lease a request belongs to.

    Every third of the lease's ttl, with its fencing token; stops when the lease
    moved on (ended, reaped, another holder). A person deciding slowly must not
    cost the agent its task.
    """
    info = await store.get_lease(lease_id)
    if info.status != "active":
        return
    interval = max(info.ttl / 3, 0.2)
    while True:  # a first beat at once: the agent may have spent most of its ttl before asking
        try:
            await store.heartbeat(lease_id, token=info.token, agent=info.agent)
        except (Refused, NotFound):
            return
        except TimedOut:
            pass  # the store is busy right now: the next beat tries again
        await asyncio.sleep(interval)


async def wait_or_cancel(store: Store, approval_id: int, *, timeout: float | None, actor: str | None,
                         catcher: SignalCatcher, owner: bool = True, lease_id: int | None = None) -> Approval:
    """Wait for the decision.

    The requester (``owner``) expires its request on timeout, cancels it on
    SIGINT/SIGTERM/SIGHUP (raising Interrupted), and keeps ``lease_id`` alive while it
    waits. Anyone else only watches: a timeout is TimedOut (exit 5) with the
    request still pending, a signal is Interrupted with nothing changed.
    """
    keeper = asyncio.ensure_future(keep_lease_alive(store, lease_id)) if owner and lease_id else None
    try:
        try:
            return await catcher.guard(store.wait_for_decision(approval_id, timeout=timeout, actor=actor,
                                                               expire=owner))
        finally:
            if keeper is not None:
                keeper.cancel()
                try:
                    await keeper
                except BaseException:  # noqa: BLE001 - cancelled, or a beat that failed: the wait decides
                    pass
    except asyncio.CancelledError:
        if catcher.signum is None:
            raise
    aid = format_id("approval", approval_id)
    signum = catcher.signum
    if not owner:
        raise Interrupted(f"interrupted ({catcher.name}) while watching {aid}; it is still pending", signum)
    a = await store.close_approval(approval_id, "cancelled", actor=actor,
                                   reason=f"the requester was interrupted ({catcher.name}) while waiting")
    if a.status == "cancelled":
        message = f"{aid} cancelled: interrupted ({catcher.name}) while waiting for a decision"
    else:
        message = f"interrupted ({catcher.name}); {aid} had already been {a.status}"
    from core.models import to_json  # only here: the hooks import this module on every call

    raise Interrupted(message, signum, data={"approval": to_json(a)})
