"""A lean HTTP/1.1 load client on raw asyncio sockets, for the benchmarks: it must not be what
limits the server it measures. Requests are encoded beforehand (`encode_request`); answers
are split from the keep-alive stream by `ResponseParser`, which reads only the status line and
Content-Length.

Two ways to drive it: `generate_load`, closed loop (N connections, one request in flight
each, the next leaves as soon as the previous answer is complete: the most a server takes);
and `send_schedule`, open loop (each request at its instant on a fixed schedule, on an idle
connection of a pool, or waiting on the clock for one: latency at a given rate).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, cast

from casewire_dev.cpu import CpuSnapshot, CpuUse, Watch
from casewire_dev.results import BenchError, percentile

HOST = "127.0.0.1"
MAX_HEAD_BYTES = 64 * 1024
DRAIN_TIMEOUT_SECONDS = 30.0


def encode_request(path: str, body: bytes, headers: Iterable[tuple[str, str]]) -> bytes:
    """A complete HTTP/1.1 POST (keep-alive is HTTP/1.1's default)."""
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {HOST}",
        *(f"{name}: {value}" for name, value in headers),
        f"Content-Length: {len(body)}",
        "",
        "",
    ]
    return "\r\n".join(lines).encode("latin-1") + body


# --- Answers --------------------------------------------------------------------------------------


class ProtocolError(BenchError):
    """An answer the client cannot read (or will not: no Content-Length)."""


class Answer(NamedTuple):
    status: int
    body: bytes  # kept only when the status is not 200, to say what went wrong


def parse_head(head: bytes) -> tuple[int, int]:
    """Status and Content-Length of a response head (without its final blank line)."""
    if not head.startswith(b"HTTP/1.") or len(head) < 12 or head[12:13] not in (b" ", b"\r", b""):
        raise ProtocolError(f"not an HTTP/1.x status line: {head[:40]!r}")
    try:
        status = int(head[9:12])
    except ValueError as error:
        raise ProtocolError(f"bad status line: {head[:40]!r}") from error
    lowered = head.lower()
    if b"\r\ntransfer-encoding:" in lowered:
        raise ProtocolError("chunked answers are not read by this client")
    start = lowered.find(b"\r\ncontent-length:")
    if start < 0:
        raise ProtocolError(f"an answer without Content-Length (status {status})")
    start += len(b"\r\ncontent-length:")
    end = lowered.find(b"\r\n", start)
    try:
        length = int(lowered[start : end if end >= 0 else len(lowered)].strip())
    except ValueError as error:
        raise ProtocolError("bad Content-Length") from error
    return status, length


class ResponseParser:
    """Splits a keep-alive byte stream into answers, whatever the packet boundaries."""

    def __init__(self) -> None:
        self._buffer = b""
        self._status: int | None = None
        self._length = 0

    def feed(self, data: bytes) -> list[Answer]:
        buffer = self._buffer + data if self._buffer else data
        answers: list[Answer] = []
        while True:
            if self._status is None:
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(buffer) > MAX_HEAD_BYTES:
                        raise ProtocolError("an answer head larger than 64 KiB")
                    break
                self._status, self._length = parse_head(buffer[:end])
                buffer = buffer[end + 4 :]
            if len(buffer) < self._length:
                break
            body = b"" if self._status == 200 else buffer[: self._length]
            answers.append(Answer(self._status, body))
            buffer = buffer[self._length :]
            self._status = None
        self._buffer = buffer
        return answers

    @property
    def pending(self) -> bool:
        """Whether part of an answer was received and not yet completed."""
        return bool(self._buffer) or self._status is not None


# --- Closed loop ----------------------------------------------------------------------------------


class _Load:
    """What the connections of one run share: the requests to send, and what came back."""

    def __init__(self, requests: Sequence[bytes], *, cycle: bool, connections: int) -> None:
        self.requests = requests
        self.cycle = cycle
        self.next = 0
        self.stopping = False
        self.measuring = False
        self.answered = 0
        self.latencies: list[float] = []
        self.error: BenchError | None = None
        self.open = connections
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def take(self) -> bytes | None:
        if self.stopping:
            return None
        if self.next >= len(self.requests):
            if not self.cycle:
                return None
            self.next = 0
        request = self.requests[self.next]
        self.next += 1
        return request

    def fail(self, error: BenchError) -> None:
        if self.error is None:
            self.error = error
        self.stopping = True

    def connection_closed(self) -> None:
        self.open -= 1
        if self.open <= 0 and not self.closed.done():
            self.closed.set_result(None)


class _LoadConnection(asyncio.Protocol):
    """One keep-alive connection, one request in flight: the next leaves as soon as the
    previous answer is complete (no task, no future per request)."""

    def __init__(self, load: _Load) -> None:
        self._load = load
        self._parser = ResponseParser()
        self._transport: asyncio.Transport | None = None
        self._sent_at = 0.0
        self._waiting = False
        self._closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def send_next(self) -> None:
        assert self._transport is not None
        request = self._load.take()
        if request is None:
            self._closing = True
            self._transport.close()
            return
        self._waiting = True
        self._sent_at = time.perf_counter()
        self._transport.write(request)

    def data_received(self, data: bytes) -> None:
        assert self._transport is not None
        try:
            answers = self._parser.feed(data)
        except ProtocolError as error:
            self._abort(error)
            return
        if not answers:
            return
        if len(answers) > 1 or not self._waiting:
            self._abort(ProtocolError("an answer to a request that was not sent"))
            return
        answer = answers[0]
        self._waiting = False
        load = self._load
        load.answered += 1
        if load.measuring:
            load.latencies.append(time.perf_counter() - self._sent_at)
        if answer.status != 200:
            detail = answer.body[:300].decode("utf-8", "replace")
            self._abort(BenchError(f"answer {answer.status} (every answer must be 200): {detail}"))
            return
        self.send_next()

    def _abort(self, error: BenchError) -> None:
        self._load.fail(error)
        self._closing = True
        if self._transport is not None:
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closing:
            state = "with a request in flight" if self._waiting else "while idle"
            self._load.fail(BenchError(f"the server closed a keep-alive connection {state}"))
        self._load.connection_closed()


# --- One closed-loop run --------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadRun:
    target: str
    measured: int  # answers inside the measured window
    seconds: float  # the window
    answered: int  # every answer, warm-up and drain included
    sent: int  # requests sent (without `cycle`: the first `sent` of them)
    latencies: list[float] = field(repr=False)
    cpu: CpuUse
    exhausted: bool  # the requests ran out before the window's end

    @property
    def rate(self) -> float:
        return self.measured / self.seconds if self.seconds > 0 else 0.0

    def latency_ms(self, quantile: float) -> float:
        return percentile(self.latencies, quantile) * 1000


async def generate_load(
    target: str,
    port: int,
    requests: Sequence[bytes],
    *,
    connections: int,
    warmup: float,
    seconds: float,
    cycle: bool,
    watch: Watch,
) -> LoadRun:
    """Send `requests` in order over `connections` keep-alive connections; count what is
    answered in the `seconds` after `warmup` (or until the requests run out, unless `cycle`
    starts them over), then let every request in flight complete."""
    loop = asyncio.get_running_loop()
    load = _Load(requests, cycle=cycle, connections=connections)
    protocols: list[_LoadConnection] = []
    try:
        for _ in range(connections):
            _, protocol = await loop.create_connection(lambda: _LoadConnection(load), HOST, port)
            protocols.append(protocol)
    except OSError as error:
        for protocol in protocols:
            protocol._abort(BenchError("connect failed"))
        raise BenchError(f"cannot connect to {target} on port {port}: {error}") from error
    for protocol in protocols:
        protocol.send_next()
    await asyncio.wait([load.closed], timeout=warmup)
    if load.closed.done() and load.error is None:
        load.fail(BenchError(f"the {len(requests)} requests ran out during the warm-up"))
    before = CpuSnapshot.take(watch)
    load.measuring = True
    first = load.answered
    started = time.perf_counter()
    if load.error is None:
        await asyncio.wait([load.closed], timeout=seconds)
    finished = time.perf_counter()
    load.measuring = False
    after = CpuSnapshot.take(watch)
    measured = load.answered - first
    load.stopping = True
    try:
        await asyncio.wait_for(asyncio.shield(load.closed), DRAIN_TIMEOUT_SECONDS)
    except TimeoutError as error:
        raise BenchError(
            f"{target}: requests still unanswered {DRAIN_TIMEOUT_SECONDS:.0f}s after the end"
        ) from error
    if load.error is not None:
        raise BenchError(f"{target}: {load.error}")
    window = finished - started
    return LoadRun(
        target=target,
        measured=measured,
        seconds=window,
        answered=load.answered,
        sent=load.next if not cycle else load.answered,
        latencies=load.latencies,
        cpu=CpuUse.between(before, after, window),
        exhausted=not cycle and load.next >= len(requests) and window < seconds * 0.99,
    )


# --- Open loop ------------------------------------------------------------------------------------


@dataclass
class Sender:
    """A pool of keep-alive connections; a request goes out on an idle one at its instant, or
    waits (on the clock) for the first one to become idle."""

    expected_status: int
    idle: deque[_SenderConnection] = field(default_factory=deque)
    waiting: deque[tuple[str, bytes]] = field(default_factory=deque)
    answered: dict[str, float] = field(default_factory=dict)  # request name → when (wall)
    failures: list[str] = field(default_factory=list)

    def send(self, name: str, request: bytes) -> None:
        if self.idle:
            self.idle.popleft().write(name, request)
        else:
            self.waiting.append((name, request))

    def on_answer(self, connection: _SenderConnection, name: str, status: int, body: bytes) -> None:
        self.answered[name] = time.time()
        if status != self.expected_status:
            self.failures.append(f"{status} {body[:200].decode('utf-8', 'replace')}")
        if self.waiting:
            connection.write(*self.waiting.popleft())
        else:
            self.idle.append(connection)

    def on_lost(self, connection: _SenderConnection, error: str) -> None:
        self.failures.append(error)
        with contextlib.suppress(ValueError):
            self.idle.remove(connection)


class _SenderConnection(asyncio.Protocol):
    def __init__(self, sender: Sender) -> None:
        self._sender = sender
        self._parser = ResponseParser()
        self._transport: asyncio.Transport | None = None
        self._in_flight: str | None = None  # the name of the request waiting for its answer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def write(self, name: str, request: bytes) -> None:
        assert self._transport is not None
        self._in_flight = name
        self._transport.write(request)

    def data_received(self, data: bytes) -> None:
        try:
            answers = self._parser.feed(data)
        except ProtocolError as error:
            self._sender.on_lost(self, str(error))
            if self._transport is not None:
                self._transport.close()
            return
        for answer in answers:
            name, self._in_flight = self._in_flight, None
            if name is None:
                self._sender.on_lost(self, "an answer to a request that was not sent")
                return
            self._sender.on_answer(self, name, answer.status, answer.body)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._in_flight is not None:
            self._sender.on_lost(
                self, f"the server closed a connection with a request in flight: {exc}"
            )

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


async def send_schedule(
    port: int,
    requests: Sequence[tuple[str, bytes]],
    begin: float,
    rate: float,
    *,
    connections: int,
    expected_status: int,
) -> Sender:
    """Send request i at `begin + i / rate` (wall clock) over a pool of `connections`; returns
    once every one is answered (or 30 s after the last was sent)."""
    loop = asyncio.get_running_loop()
    sender = Sender(expected_status=expected_status)
    pool = []
    for _ in range(connections):
        _, protocol = await loop.create_connection(lambda: _SenderConnection(sender), HOST, port)
        pool.append(protocol)
        sender.idle.append(protocol)
    try:
        for index, (name, request) in enumerate(requests):
            delay = begin + index / rate - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            sender.send(name, request)
        deadline = loop.time() + 30
        while (
            len(sender.answered) + len(sender.failures) < len(requests) and loop.time() < deadline
        ):
            await asyncio.sleep(0.05)
    finally:
        for connection in pool:
            connection.close()
    if len(sender.answered) < len(requests) and not sender.failures:
        sender.failures.append(f"only {len(sender.answered)} of {len(requests)} requests answered")
    return sender
