"""`casewire-ingest normalize`: good messages on stdout, each bad body or item on stderr with
its place, and a non-zero exit when anything was rejected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from casewire_ingest.entrypoints.cli import main


def test_good_messages_are_printed_and_each_rejected_item_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sent_ms = 1_767_225_600_000
    customer = {
        "sender": {"id": "222"},
        "recipient": {"id": "111"},
        "timestamp": sent_ms,
        "message": {"mid": "m_5", "text": "my order is late"},
    }
    guest = customer | {"sender": {"user_ref": "abc123"}, "message": {"mid": "m_6"}}
    entry = {"id": "111", "time": sent_ms, "messaging": [customer, guest, "not an event"]}
    path = tmp_path / "m_guest_batch.json"
    path.write_text(json.dumps({"object": "page", "entry": [entry]}), encoding="utf-8")

    exit_code = main(["normalize", str(path)])

    out, err = capsys.readouterr()
    assert exit_code == 1
    assert [json.loads(line)["platform_message_id"] for line in out.splitlines()] == ["m_5"]
    assert err.splitlines() == [
        f"{path}: entry[0].messaging[1]: missing_field: entry[0].messaging[1].sender.id is missing",
        f"{path}: entry[0].messaging[2]: invalid_field: entry[0].messaging[2] is not an object",
    ]


def test_an_item_repeated_inside_one_body_is_printed_once_as_the_service_publishes_it(
    shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # nyaruka/courier's fixture carries the same WhatsApp message twice in one body.
    path = shared_data / "payloads/whatsapp/courier_duplicate.json"

    exit_code = main(["normalize", str(path)])

    out, err = capsys.readouterr()
    assert exit_code == 0, err
    assert [json.loads(line)["platform_message_id"] for line in out.splitlines()] == ["external_id"]


def test_the_statuses_of_one_outbound_message_print_one_reply(
    tmp_path: Path, shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = json.loads((shared_data / "payloads/whatsapp/pywa_status__sent.json").read_text())
    value = body["entry"][0]["changes"][0]["value"]
    value["statuses"].append(value["statuses"][0] | {"status": "read", "timestamp": "1698266999"})
    path = tmp_path / "statuses.json"
    path.write_text(json.dumps(body), encoding="utf-8")

    exit_code = main(["normalize", str(path)])

    out, _ = capsys.readouterr()
    assert exit_code == 0
    [reply] = [json.loads(line) for line in out.splitlines()]
    assert (reply["direction"], reply["text"], reply["sent_at"]) == (
        "outbound", "", "2023-10-25T20:49:05Z"
    )  # fmt: skip
