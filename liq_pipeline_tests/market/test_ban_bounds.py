"""A 418's Retry-After and the ban file are read defensively (issue 28, case 6): a huge, infinite or unreadable
Retry-After is remembered as the longest documented ban (3 days) instead of crashing, a corrupt ban file is
replaced, and the banning host gets one request, never the retries of a crashed step."""

from __future__ import annotations

import json
import time

import pytest

from liq_pipeline.assets import raw
from liq_pipeline.market.ban import MAX_BAN_S, BanMemory
from liq_pipeline_tests.support.archive_server import ArchiveServer
from liq_pipeline_tests.support.raw_runs import failure_message, http_resources, materialize


@pytest.mark.parametrize("retry_after", ["1e20", "inf", "Infinity", "nan", "-5", "abc",
                                         "Fri, 31 Dec 9999 23:59:59 GMT"])
def test_huge_or_unreadable_retry_after_is_remembered_and_the_host_gets_one_request(tmp_path, mirror, retry_after):
    with ArchiveServer(mirror) as server:
        server.set_status_everywhere(418, {"Retry-After": retry_after})
        result = materialize(http_resources(tmp_path, server.url), [raw.klines])
        assert not result.success
        message = failure_message(result)
        assert "banned by Binance" in message and "Error" not in message.split("\n")[0]
        assert len(server.log) == 1
        assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
        ban = BanMemory(tmp_path / "state" / "http-bans.json").active(server.url.split("//")[1])
        assert ban is not None and ban.remaining_s(time.time()) <= MAX_BAN_S + 1


@pytest.mark.parametrize("content", ['{"127.0.0.1:1": {"until": "abc"}}', '{"h": {"until": 1e400}}', "not json",
                                     '{"h": {"until": "nan"}}', "[1, 2]", '{"h": 5}'])
def test_corrupt_ban_file_is_replaced_not_fatal(tmp_path, content):
    path = tmp_path / "http-bans.json"
    path.write_text(content)
    memory = BanMemory(path)
    assert memory.active("h") is None and memory.active("127.0.0.1:1") is None
    ban = memory.record("h", 60, "HTTP 418 on test")
    assert 59 <= ban.remaining_s(time.time()) <= 61
    data = json.loads(path.read_text())
    assert list(data) == ["h"] and data["h"]["until"] == ban.until


@pytest.mark.parametrize("seconds", [1e20, float("inf"), float("nan"), -1.0])
def test_recorded_ban_is_bounded(tmp_path, seconds):
    ban = BanMemory(tmp_path / "b.json").record("h", seconds, "x")
    assert 0 <= ban.remaining_s(time.time()) <= MAX_BAN_S
