"""Connection limits for the local Hub: timeouts for half-sent requests, a cap on open connections,
and (TEST-ONLY) fault injection. A subclass of uvicorn's h11 protocol, because the request head is
read before any ASGI application runs: only the protocol can time it out.

- A request head (request line and headers) must arrive within `header_timeout` seconds of the
  connection opening or of the first byte of a keep-alive request, however it trickles in.
- A request body must not stall for `idle_timeout` seconds; the same holds for a response the
  client stops reading. A body the application did not read (it answered early: 4xx, 413) is
  drained for at most min(5 s, `idle_timeout`) and 16 MiB, then the connection is closed.
- At most `max_connections` are open. At the cap, a new connection closes the oldest one that is
  still waiting for its first request head (a slow or idle client), else the oldest idle keep-alive
  one; if every connection has a request in flight, the new one gets 503.

The bytes of a Content-Length body go from the socket to the application directly, past h11's
buffer (``HubProtocol._body_direct``); h11 still parses everything else.

The limits themselves (``Limits``) live in ``limits.py``, so the command line reads their
defaults without importing uvicorn.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import h11
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.h11_impl import H11Protocol

from .errors import ApiError
from .faults import Faults
from .limits import Limits
from .responses import error_response

try:  # h11's own reader class: the direct body path below checks for it; without it, h11 reads every body
    from h11._readers import ContentLengthReader as _ContentLengthReader
except ImportError:  # pragma: no cover - a future h11
    _ContentLengthReader = None

log = logging.getLogger("tensorferry.hub")

DRAIN_BYTES = 16 << 20
DRAIN_SECONDS = 5.0
TIMEOUT_408 = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
BUSY_BODY = b'{"error":"Too many connections, try again later"}'
BUSY_503 = (b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(BUSY_BODY)) + BUSY_BODY


def protocol_class(limits: Limits, faults: Faults | None = None) -> type[H11Protocol]:
    """The protocol class uvicorn builds one instance of per connection (`uvicorn.Config(http=...)`)."""
    cap = limits.effective_max_connections()
    return type("HubProtocol", (HubProtocol,), {"limits": limits, "cap": cap, "faults": faults, "fresh": {}})


class HubProtocol(H11Protocol):
    """uvicorn's h11 protocol with the timeouts and cap above; configured by `protocol_class`."""

    limits = Limits()
    cap = 1000
    faults: Faults | None = None
    # Open connections that have not sent a complete request head yet, oldest first (dicts keep
    # insertion order): the first to go when the cap is reached. Shared by one server's connections.
    fresh: dict["HubProtocol", None] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.opened = time.monotonic()
        self.served = 0
        self.refused = False
        self.timer: asyncio.TimerHandle | None = None
        self.timer_kind = ""
        self.drained = 0
        if self.faults is not None:
            self.app = self._with_faults(self.app)

    # connection cap -----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.cap and not self._evict_one():
            self.refused = True
            self.transport = transport
            transport.write(BUSY_503)
            transport.close()
            return
        super().connection_made(transport)
        self.fresh[self] = None
        self._arm("head", self.limits.header_timeout)

    def _waiting(self) -> bool:
        return self.conn.their_state is h11.IDLE and (self.cycle is None or self.cycle.response_complete)

    def _evict_one(self) -> bool:
        """Close the oldest connection still waiting for its first request head (O(1)), else the
        oldest idle keep-alive one; False if every connection has a request in flight."""
        if self.fresh:
            victim = next(iter(self.fresh))
        else:
            idle = [c for c in self.connections if isinstance(c, HubProtocol) and c._waiting()]
            if not idle:
                return False
            victim = min(idle, key=lambda c: c.opened)
        self.fresh.pop(victim, None)
        self.connections.discard(victim)
        victim._disarm()
        victim.transport.close()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.fresh.pop(self, None)
        if self.refused:
            return
        super().connection_lost(exc)

    # timeouts -----------------------------------------------------------------------------------
    # One deadline at a time, by kind: "head" (request head), "body" (body silent), "drain" (an
    # unread body after the answer), "write" (the client stopped reading).
    def _arm(self, kind: str, seconds: float) -> None:
        self._disarm()
        self.timer_kind = kind
        self.timer = self.loop.call_later(seconds, self._expired, kind)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer, self.timer_kind = None, ""

    def _expired(self, kind: str) -> None:
        self.timer, self.timer_kind = None, ""
        if self.transport.is_closing():
            return
        if kind == "body" and self.flow is not None and self.flow.read_paused:
            self._arm("body", self.limits.idle_timeout)  # the application is not reading: not the client's fault
            return
        if kind == "write":
            log.info("client read nothing for %.1f s: dropping the connection", self.limits.idle_timeout)
            self.transport.abort()
            return
        log.info("%s: closing the connection", {"head": "request head too slow", "body": "request body stalled",
                                                "drain": "unread request body"}[kind])
        partial_head = kind == "head" and bool(self.conn.trailing_data[0])
        if (kind == "body" or partial_head) and (self.cycle is None or not self.cycle.response_started):
            self.transport.write(TIMEOUT_408)
        self.transport.close()

    def _draining(self) -> bool:
        return self.cycle is not None and self.cycle.response_complete and self.conn.their_state is h11.SEND_BODY

    def data_received(self, data: bytes) -> None:
        draining = self._draining()
        if draining:
            self.drained += len(data)  # the answer went out before the body: drain a bounded amount
            if self.drained > DRAIN_BYTES:
                self.transport.close()
                return
            super().data_received(data)
        else:
            rest = self._body_direct(data)
            if rest:
                super().data_received(rest)
            elif self.conn.their_state is h11.SEND_BODY:
                self.handle_events()  # the body is complete: h11 answers EndOfMessage
        state = self.conn.their_state
        if state is not h11.IDLE:
            self.fresh.pop(self, None)
        if state is h11.IDLE:
            if self.timer_kind != "head" and self.conn.trailing_data[0]:
                self._arm("head", self.limits.header_timeout)  # a keep-alive request began
            elif self.timer_kind == "drain":
                self._disarm()  # drained to the end: an ordinary keep-alive connection again
        elif state is h11.SEND_BODY:
            if not self._draining():
                self._arm("body", self.limits.idle_timeout)
        elif self.timer_kind in ("head", "body"):
            self._disarm()  # the whole request is in; the application takes its time

    def _body_direct(self, data: bytes) -> bytes:
        """Hand the bytes of a Content-Length body straight to the application; returns what follows it.

        Through h11 and uvicorn every byte is copied five times, in 256 KiB pieces (1 s of CPU per
        GiB uploaded here).  This path is taken only between h11's own events: a body with a
        Content-Length whose head h11 parsed, nothing left in h11's buffer, the answer not sent yet.
        h11 still parses the head, chunked bodies, the end of the message and whatever follows it.
        """
        reader = getattr(self.conn, "_reader", None)
        if (self.cycle is None or self.conn.their_state is not h11.SEND_BODY or self.conn.our_state is h11.DONE
                or _ContentLengthReader is None or type(reader) is not _ContentLengthReader or self.conn.trailing_data[0]):
            return data
        n = min(len(data), reader._remaining)
        if n == 0:
            return data
        chunk = data if n == len(data) else data[:n]
        # uvicorn hands the application bytes(body): a bytes object goes through without a copy
        self.cycle.body = chunk if not self.cycle.body else self.cycle.body + chunk
        reader._remaining -= n
        if len(self.cycle.body) > HIGH_WATER_LIMIT:
            self.flow.pause_reading()
        self.cycle.message_event.set()
        return data[n:]

    def on_response_complete(self) -> None:
        self.served += 1
        unread_body = self.conn.their_state is h11.SEND_BODY
        if self.timer_kind != "drain":
            self._disarm()
        super().on_response_complete()
        if unread_body and self.conn.their_state is h11.SEND_BODY:
            self.drained = 0
            self._arm("drain", min(DRAIN_SECONDS, self.limits.idle_timeout))

    def pause_writing(self) -> None:
        super().pause_writing()
        self._arm("write", self.limits.idle_timeout)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.timer_kind == "write":
            self._disarm()

    # TEST-ONLY fault injection ----------------------------------------------------------------
    def _with_faults(self, app: Any) -> Any:
        faults = self.faults
        assert faults is not None

        async def faulty(scope: dict[str, Any], receive: Any, send: Any) -> None:
            raw = scope.get("raw_path") or scope.get("path", "").encode()
            fault = faults.draw(raw.decode("latin-1")) if scope["type"] == "http" else None
            if fault is None:
                return await app(scope, receive, send)
            log.warning("fault injected: %s on %s %s", fault, scope["method"], scope["path"])
            if fault == "lost":  # the work is done, the answer never arrives
                async def swallow(message: dict[str, Any]) -> None:
                    return None

                if faults.delay:  # dropped first, carried out later: a request still in flight when the client gave up
                    await self._late(app, scope, receive, swallow, faults.delay)
                    return None
                await app(scope, receive, swallow)
                self.transport.abort()
                return None
            if fault == "drop":
                self.transport.abort()
                while (await receive())["type"] != "http.disconnect":
                    pass
                return None
            status = int(fault)
            headers = {"Retry-After": "1"} if status == 429 else None
            err = ApiError(status, f"Injected fault {status} (TENSORFERRY_HUB_FAULTS)", "InjectedFault")
            return await error_response(err, headers=headers)(scope, receive, send)

        return faulty

    async def _late(self, app: Any, scope: dict[str, Any], receive: Any, send: Any, delay: float) -> None:
        """Read the whole request, drop the connection, wait DELAY seconds, then serve the request unanswered."""
        body: list[dict[str, Any]] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before its request was complete: nothing to carry out
            body.append(message)
            if not message.get("more_body"):
                break
        self.transport.abort()
        await asyncio.sleep(delay)
        replay = iter(body)

        async def again() -> dict[str, Any]:
            return next(replay, {"type": "http.disconnect"})

        await app(scope, again, send)
