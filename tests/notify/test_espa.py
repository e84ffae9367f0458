"""ESPA 4.4.4: framing checked by hand, then calls to a simulated paging system over TCP and a
pseudo-terminal, with NAKs, silence, a dropped link and a link check (docs/espa.md)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from services.notify.channel import Channel, ChannelError, Notice, Step, Target, Urgency
from services.notify.espa import DEFAULT_PRIORITIES, EspaChannel, EspaSettings, short_code
from services.notify.espa_protocol import (
    EOT,
    FramingError,
    TextEncoding,
    bcc,
    data_block,
    display_text,
    parse_block,
    selecting,
    transliterate,
)
from tests.support.espa_pager import EspaPager, wait_until

ALARM = "3f9c1d2e-0000-5000-8000-000000000001"
DECT = Target(phone_id="dect-b", phone_name="DECT B", address="301")


def notice(urgency: Urgency = Urgency.HIGH, title: str = "Fald stue 12", body: str = "") -> Notice:
    return Notice(alarm_id=ALARM, step=Step.FIRST, urgency=urgency, title=title, body=body)


# Framing, by hand.


def test_block_and_bcc_match_a_hand_computed_example() -> None:
    # SOH '1' STX '1' US '550' RS '6' US '2' ETX BCC; BCC = XOR of 31 02 31 1F 35 35 30 1E 36 1F
    # 32 03 = 0x2B, worked pairwise: 33 02 1D 28 1D 2D 33 05 1A 28 2B.
    block = data_block("1", [("1", b"550"), ("6", b"2")])
    assert block == bytes.fromhex("01 31 02 31 1F 35 35 30 1E 36 1F 32 03 2B")


def test_the_zenitel_wiki_example_frames_the_same_and_its_parity_is_even() -> None:
    # The wiki's call (its hex shows a stray space after STX that its text does not have).
    records = [("1", b"550"), ("2", b"CALL ME 101")] + [(c, b"3") for c in "3456"]
    block = data_block("1", records)
    assert block[:-1] == bytes.fromhex(
        "01 31 02 31 1F 35 35 30 1E 32 1F 43 41 4C 4C 20 4D 45 20"
        "31 30 31 1E 33 1F 33 1E 34 1F 33 1E 35 1F 33 1E 36 1F 33 03"
    )
    assert bcc(block[1:]) == 0  # longitudinal parity including the BCC is even
    parsed = parse_block(block)
    assert parsed.function == "1"
    assert parsed.get("2") == b"CALL ME 101"


def test_selecting_is_own_address_enq_then_paging_address_enq() -> None:
    assert selecting("1", "2") == b"1\x052\x05"
    with pytest.raises(ValueError, match="one digit"):
        selecting("1", "12")


def test_a_corrupted_block_fails_its_bcc() -> None:
    block = bytearray(data_block("1", [("1", b"301")]))
    block[4] ^= 0x01
    with pytest.raises(FramingError, match="BCC"):
        parse_block(bytes(block))
    with pytest.raises(FramingError):
        parse_block(b"\x011\x02garbage")


def test_danish_letters_are_spelt_out_for_ascii() -> None:
    assert transliterate("Søren Ærø på Åbo, æble ØL") == "Soeren Aeroe paa Aabo, aeble OeL"
    assert transliterate("Café Müller €") == "Cafe Muller ?"


def test_display_text_is_cleaned_encoded_and_cut() -> None:
    assert display_text("a\x03b\x1ec\nd", TextEncoding.ASCII, 80) == b"a b c d"
    assert display_text("Fald på stue 12", TextEncoding.ASCII, 9) == b"Fald paa "
    assert display_text("Fald på", TextEncoding.LATIN1, 80) == "Fald på".encode("latin-1")
    assert display_text("Fald på", TextEncoding.UTF8, 80) == "Fald på".encode()
    assert display_text("€", TextEncoding.LATIN1, 80) == b"?"


def test_block_for_carries_address_text_code_and_priority_from_urgency() -> None:
    channel = EspaChannel(EspaSettings(target="loop://"))
    for urgency, priority in [(Urgency.HIGH, b"2"), (Urgency.MEDIUM, b"1"), (Urgency.LOW, b"1")]:
        block = parse_block(channel.block_for("301", notice(urgency, body="høj")))
        assert block.function == "1"
        assert [code for code, _ in block.records] == ["1", "2", "6"]
        assert block.get("1") == b"301"
        assert block.get("2") == b"Fald stue 12: hoej #3F9C"
        assert block.get("6") == priority


def test_optional_records_and_truncation_keep_the_short_code() -> None:
    channel = EspaChannel(
        EspaSettings(
            target="loop://",
            max_text=12,
            beeps={Urgency.HIGH: "5"},
            call_type="3",
            transmission="1",
            priorities={Urgency.HIGH: "3", Urgency.MEDIUM: "1", Urgency.LOW: "1"},
        )
    )
    block = parse_block(channel.block_for("301", notice(body="a long body text")))
    assert [code for code, _ in block.records] == ["1", "2", "3", "4", "5", "6"]
    assert block.get("2") == b"Fald s #3F9C"  # 12 characters, the code kept whole
    assert block.get("3") == b"5"
    assert block.get("6") == b"3"
    assert short_code(ALARM) == "3F9C"


def test_settings_are_checked_up_front() -> None:
    with pytest.raises(ValueError, match="tcp://host:port"):
        EspaSettings(target="tcp://nohost")
    with pytest.raises(ValueError, match="unknown settings"):
        EspaSettings(target="serial:///dev/ttyS0?speed=9600")
    with pytest.raises(ValueError, match="use tcp"):
        EspaSettings(target="http://x")
    with pytest.raises(ValueError, match="no value for"):
        EspaSettings(target="loop://", priorities={"high": "2"})
    with pytest.raises(ValueError, match="utf-16"):
        EspaSettings(target="loop://", encoding="utf-16")  # type: ignore[arg-type]
    assert EspaSettings(target="loop://", encoding="latin-1").encoding is TextEncoding.LATIN1  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="7-bit"):
        EspaChannel(
            EspaSettings(target="serial:///dev/ttyS0?bytesize=7", encoding=TextEncoding.UTF8)
        )


def test_espa_channel_satisfies_the_channel_interface() -> None:
    channel: Channel = EspaChannel(EspaSettings(target="loop://"))
    assert channel.name == "espa"


# Over the wire, against the simulated paging system.


@pytest.fixture
def pager() -> Iterator[EspaPager]:
    sim = EspaPager().start_tcp()
    yield sim
    sim.stop()


def make(sim: EspaPager, **kwargs: object) -> EspaChannel:
    options: dict[str, object] = {"step_timeout": 0.5, "retries": 2, **kwargs}
    return EspaChannel(EspaSettings(target=sim.url, **options))  # type: ignore[arg-type]


def test_a_call_over_tcp_reaches_the_paging_system(pager: EspaPager) -> None:
    channel = make(pager)
    channel.send(DECT, notice(body="Høj prioritet"))
    (call,) = pager.wait_calls(1)
    assert (call.function, call.address, call.priority) == ("1", "301", "2")
    assert call.text == "Fald stue 12: Hoej prioritet #3F9C"
    block = channel.block_for("301", notice(body="Høj prioritet"))
    wait_until(lambda: pager.received.endswith(bytes([EOT])))
    assert bytes(pager.received) == bytes([EOT]) + b"1\x052\x05" + block + bytes([EOT])
    channel.close()


def test_a_call_over_a_serial_line_reaches_the_paging_system() -> None:
    sim = EspaPager(encoding="utf-8").start_pty()
    try:
        assert sim.url.startswith("serial:///dev/")
        channel = EspaChannel(
            EspaSettings(target=sim.url, step_timeout=1.0, encoding=TextEncoding.UTF8)
        )
        channel.send(DECT, notice(Urgency.MEDIUM, title="Ble stue 7", body="Æ ø å"))
        (call,) = sim.wait_calls(1)
        assert (call.address, call.text, call.priority) == ("301", "Ble stue 7: Æ ø å #3F9C", "1")
        channel.check()
        channel.close()
    finally:
        sim.stop()


def test_a_nak_is_answered_by_sending_the_block_again(pager: EspaPager) -> None:
    channel = make(pager, retries=3)
    pager.nak_next = 2
    channel.send(DECT, notice())
    assert len(pager.wait_calls(1)) == 1
    block = channel.block_for("301", notice())
    assert pager.received.count(block) == 3
    channel.close()


def test_naks_beyond_the_retries_raise_and_the_next_call_goes_through(pager: EspaPager) -> None:
    channel = make(pager, retries=2)
    pager.nak_next = 3
    with pytest.raises(ChannelError, match="NAK 3 times"):
        channel.send(DECT, notice())
    assert pager.calls == []
    channel.send(DECT, notice())
    assert len(pager.wait_calls(1)) == 1
    channel.close()


def test_a_refused_selection_is_retried_then_raises(pager: EspaPager) -> None:
    channel = make(pager, retries=1)
    pager.refuse_selections = 1
    channel.send(DECT, notice())
    pager.refuse_selections = 2
    with pytest.raises(ChannelError, match="refused selection 2 times"):
        channel.send(DECT, notice())
    assert len(pager.calls) == 1
    channel.close()


def test_silence_raises_within_the_step_timeout(pager: EspaPager) -> None:
    channel = make(pager, step_timeout=0.4)
    pager.silent = True
    started = time.monotonic()
    with pytest.raises(ChannelError, match=r"no answer .* within 0.4 s"):
        channel.send(DECT, notice())
    assert time.monotonic() - started < 1.0
    pager.silent = False
    channel.send(DECT, notice())
    assert len(pager.wait_calls(1)) == 1
    channel.close()


def test_a_dropped_link_raises_and_the_next_send_reconnects(pager: EspaPager) -> None:
    channel = make(pager)
    channel.send(DECT, notice())
    pager.drop()
    with pytest.raises(ChannelError, match=r"lost|no answer"):
        channel.send(DECT, notice())
    channel.send(DECT, notice())
    assert len(pager.wait_calls(2)) == 2
    channel.close()


def test_check_is_a_selection_ended_at_once(pager: EspaPager) -> None:
    channel = make(pager)
    channel.check()
    wait_until(lambda: pager.received.endswith(bytes([EOT])) and pager.selections == 1)
    assert bytes(pager.received) == bytes([EOT]) + b"1\x052\x05" + bytes([EOT])
    assert pager.calls == []
    pager.silent = True
    with pytest.raises(ChannelError, match="no answer"):
        channel.check()
    pager.silent = False
    channel.check()
    channel.close()


def test_check_fails_when_nothing_listens() -> None:
    sim = EspaPager().start_tcp()
    url = sim.url
    sim.stop()
    channel = EspaChannel(EspaSettings(target=url, step_timeout=0.5))
    with pytest.raises(ChannelError, match="cannot open"):
        channel.check()
    with pytest.raises(ChannelError, match="cannot open"):
        channel.send(DECT, notice())


def test_an_invalid_call_address_raises_channel_error(pager: EspaPager) -> None:
    channel = make(pager)
    with pytest.raises(ChannelError, match="call address"):
        channel.send(Target("x", "X", "30\x031"), notice())
    channel.close()


def test_calls_from_many_threads_take_turns_on_the_line(pager: EspaPager) -> None:
    channel = make(pager, step_timeout=2.0)
    targets = [Target(f"p{i}", f"P{i}", str(300 + i)) for i in range(8)]
    threads = [threading.Thread(target=channel.send, args=(t, notice())) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    calls = pager.wait_calls(8)
    assert sorted(c.address for c in calls) == [str(300 + i) for i in range(8)]
    assert pager.bad_blocks == 0
    channel.close()


# Any text survives framing: the simulator's parser always finds a valid BCC.


@given(
    title=st.text(max_size=120),
    body=st.text(max_size=60),
    encoding=st.sampled_from(list(TextEncoding)),
    urgency=st.sampled_from(list(Urgency)),
)
@settings(max_examples=300, deadline=None)
def test_any_text_round_trips_through_framing(
    title: str, body: str, encoding: TextEncoding, urgency: Urgency
) -> None:
    channel = EspaChannel(EspaSettings(target="loop://", encoding=encoding, max_text=64))
    block = parse_block(channel.block_for("301", notice(urgency, title=title, body=body)))
    text = f"{title}: {body}" if body else title
    shown = display_text(text, encoding, 64 - 6) + b" #3F9C"
    assert block.get("1") == b"301"
    assert block.get("2") == shown
    assert block.get("6") == (b"2" if urgency is Urgency.HIGH else b"1")
    if encoding is TextEncoding.UTF8 and not any(c < " " or "\x7f" <= c <= "\x9f" for c in text):
        assert shown.decode() == text[:58] + " #3F9C"


def test_any_text_reaches_the_simulator_intact(pager: EspaPager) -> None:
    pager.encoding = "utf-8"
    channel = make(pager, encoding=TextEncoding.UTF8, show_code=False, max_text=64)

    @given(text=st.text(min_size=1, max_size=40))
    @settings(max_examples=40, deadline=None)
    def round_trip(text: str) -> None:
        before = len(pager.calls)
        channel.send(DECT, notice(title=text))
        call = pager.wait_calls(before + 1)[-1]
        assert call.text == display_text(text, TextEncoding.UTF8, 64).decode()

    round_trip()
    assert pager.bad_blocks == 0
    channel.close()


# docs/espa.md states the settings and the worked example; they must match the code.

DOC = (Path(__file__).resolve().parents[2] / "docs" / "espa.md").read_text()


def test_the_documented_site_file_block_gives_the_defaults() -> None:
    block = DOC.split("```yaml", 1)[1].split("```", 1)[0]
    espa = yaml.safe_load(block)["notify"]["espa"]
    assert EspaSettings(**espa) == EspaSettings(target=espa["target"])
    documented = set(re.findall(r"^\| `([a-z_]+)`", DOC, re.M))
    documented |= {"own_address", "paging_address"}  # one row names both
    assert documented == {f.name for f in fields(EspaSettings)}


def test_the_documented_worked_example_is_what_the_code_frames() -> None:
    assert "`01 31 02 31 1F 35 35 30 1E 36 1F 32 03 2B`" in DOC
    assert data_block("1", [("1", b"550"), ("6", b"2")]).hex(" ").upper() in DOC


def test_the_documented_priority_mapping_is_the_default() -> None:
    assert DEFAULT_PRIORITIES == {Urgency.HIGH: "2", Urgency.MEDIUM: "1", Urgency.LOW: "1"}
    assert "High sends `2` (high); medium and low\n  send `1` (normal)" in DOC
