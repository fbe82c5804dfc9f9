"""The sentence a stuck node pod's Events make: Warnings only, latest first, each once, one line, capped."""

from __future__ import annotations

from typing import Any

from multus_cleanup.cluster.podevents import MAX_CHARS, MAX_MESSAGE, describe_warnings


def event(reason: str, message: str, *, type_: str = "Warning", version: int = 1, **stamps: Any) -> dict[str, Any]:
    return {"type": type_, "reason": reason, "message": message,
            "metadata": {"resourceVersion": str(version), **stamps.pop("metadata", {})}, **stamps}


def test_nothing_to_say() -> None:
    assert describe_warnings([]) == ""
    assert describe_warnings([event("Pulled", "already present", type_="Normal")]) == ""


def test_latest_first_whatever_kind_of_timestamp() -> None:
    events = [
        event("FailedMount", "old mount", lastTimestamp="2026-01-01T10:00:00Z"),
        event("FailedScheduling", "newest", eventTime="2026-01-01T09:00:00.000001Z",
              series={"lastObservedTime": "2026-01-01T10:03:00.000001Z"}),
        event("FailedCreatePodSandBox", "middle", metadata={"creationTimestamp": "2026-01-01T10:01:00Z"}),
        event("BackOff", "same second, later write", version=9, lastTimestamp="2026-01-01T10:00:00Z"),
    ]
    assert describe_warnings(events) == ("FailedScheduling: newest; FailedCreatePodSandBox: middle; "
                                         "BackOff: same second, later write; FailedMount: old mount")


def test_each_reason_and_message_once_on_one_line() -> None:
    events = [event("FailedMount", "a\n  b", lastTimestamp=f"2026-01-01T10:00:0{i}Z") for i in range(3)]
    events.append(event("FailedMount", "another volume", lastTimestamp="2026-01-01T09:00:00Z"))
    events.append(event("", "", lastTimestamp="2026-01-01T08:00:00Z"))
    assert describe_warnings(events) == "FailedMount: a b; FailedMount: another volume; Warning"


def test_capped_per_message_and_in_all() -> None:
    long = event("FailedCreatePodSandBox", "x" * 1000, lastTimestamp="2026-01-01T10:00:01Z")
    other = event("FailedMount", "y" * 1000, lastTimestamp="2026-01-01T10:00:00Z")
    said = describe_warnings([other, long])
    assert len(said) == MAX_CHARS and said.endswith("...")
    first = said.split("; ")[0]
    assert first == "FailedCreatePodSandBox: " + "x" * (MAX_MESSAGE - 3) + "..."
    assert said.split("; ")[1].startswith("FailedMount: yyy")


def test_bad_timestamps_sort_last_and_never_raise() -> None:
    events = [event("A", "no time at all"), event("B", "garbage", lastTimestamp="yesterday"),
              event("C", "dated", lastTimestamp="2026-01-01T10:00:00Z")]
    assert describe_warnings(events).startswith("C: dated; ")
