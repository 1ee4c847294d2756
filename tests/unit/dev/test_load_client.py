"""The load client of the benchmarks: answers split from a keep-alive stream, heads read, and
the open-loop sender's pool."""

from __future__ import annotations

from collections import deque

import pytest
from casewire_dev import load_client

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 15\r\ncontent-type: application/json\r\n\r\n"


def test_answers_are_split_from_a_keep_alive_stream_whatever_the_packets() -> None:
    problem = b'{"error":"unavailable"}'
    stream = (
        OK
        + b'{"status":"ok"}'
        + b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: %d\r\n\r\n" % len(problem)
        + problem
        + OK
        + b'{"status":"ok"}'
    )
    expected = [
        load_client.Answer(200, b""),
        load_client.Answer(503, problem),
        load_client.Answer(200, b""),
    ]
    whole = load_client.ResponseParser()
    assert whole.feed(stream) == expected
    assert not whole.pending

    for size in (1, 2, 7, 40):
        parser = load_client.ResponseParser()
        answers = []
        for start in range(0, len(stream), size):
            answers += parser.feed(stream[start : start + size])
        assert answers == expected
        assert not parser.pending


def test_an_incomplete_answer_is_pending() -> None:
    parser = load_client.ResponseParser()

    assert parser.feed(OK + b'{"status"') == []
    assert parser.pending
    assert parser.feed(b':"ok"}') == [load_client.Answer(200, b"")]


@pytest.mark.parametrize(
    ("head", "problem"),
    [
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", "chunked"),
        (b"HTTP/1.1 204 No Content\r\nServer: x", "without Content-Length"),
        (b"SSH-2.0-OpenSSH_9.6", "status line"),
        (b"HTTP/1.1 2x0 OK\r\nContent-Length: 0", "status line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: many", "Content-Length"),
    ],
)
def test_unreadable_answers_fail_loudly(head: bytes, problem: str) -> None:
    with pytest.raises(load_client.ProtocolError, match=problem):
        load_client.ResponseParser().feed(head + b"\r\n\r\n")


def test_head_parsing_reads_status_and_length() -> None:
    assert load_client.parse_head(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 7") == (
        413,
        7,
    )
    assert load_client.parse_head(b"HTTP/1.0 200\r\nCONTENT-LENGTH:12\r\nx: y") == (200, 12)


class _RecordingConnection:
    def __init__(self) -> None:
        self.written: list[str] = []

    def write(self, name: str, request: bytes) -> None:
        self.written.append(name)


def test_the_open_loop_sender_queues_requests_when_every_connection_is_busy() -> None:
    sender = load_client.Sender(expected_status=202)
    first, second = _RecordingConnection(), _RecordingConnection()
    sender.idle.extend([first, second])  # type: ignore[list-item]
    for name in ("r1", "r2", "r3", "r4"):
        sender.send(name, name.encode())
    assert (first.written, second.written) == (["r1"], ["r2"])
    assert [name for name, _ in sender.waiting] == ["r3", "r4"]
    sender.on_answer(second, "r2", 202, b"")  # type: ignore[arg-type]
    sender.on_answer(first, "r1", 500, b"boom")  # type: ignore[arg-type]
    assert (first.written, second.written, sender.waiting) == (["r1", "r4"], ["r2", "r3"], deque())
    sender.on_answer(first, "r4", 202, b"")  # type: ignore[arg-type]
    assert list(sender.idle) == [first]  # type: ignore[comparison-overlap]
    assert sorted(sender.answered) == ["r1", "r2", "r4"]
    assert sender.failures == ["500 boom"]
