"""Phones in the site file: what loads, what `check-config` refuses (with its line) and what it
warns about (docs/notifications.md, docs/site-file.md)."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from carehub.site import SiteFileError, check_site, load_site

ROOT = Path(__file__).resolve().parents[2]

SITE = """\
site: mini
name: Mini
wards:
  - {id: a, name: A, rooms: [a-1]}
  - {id: b, name: B, rooms: [b-1]}
notify:
  public_url: "https://carehub.mini.local"
  ntfy: {url: "http://ntfy.mini.local", token_env: CAREHUB_NTFY_TOKEN}
escalation:
  {high_minutes: 0.5, reminder_high_minutes: 0.25, fallback_minutes: 1.5, fallback_phones: [leader]}
phones:
  - {id: nat-a, name: Nat A, wards: [a], ntfy_topic: mini-a-1f}
  - {id: nat-b, name: Nat B, wards: [b], ntfy_topic: mini-b-2e}
  - {id: leader, name: Leader, wards: [a, b], ntfy_topic: mini-leader-3d}
"""


def problems(text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(SiteFileError) as info:
        check_site(text, "t.yaml")
    return [(p.line, p.where(), p.message) for p in info.value.problems]


def test_phones_and_fractional_minutes_load() -> None:
    site, warnings = check_site(SITE)
    assert warnings == []
    assert [p.id for p in site.phones] == ["nat-a", "nat-b", "leader"]
    assert site.escalation.fallback_after() == timedelta(seconds=90)
    assert site.notify.ntfy is not None
    assert site.notify.ntfy.token_env == "CAREHUB_NTFY_TOKEN"


@pytest.mark.parametrize(
    ("old", "new", "line", "where", "says"),
    [
        ("wards: [b], ntfy", "wards: [c], ntfy", 13, "phones[1].wards[0]", "no ward has id 'c'"),
        ("id: nat-b,", "id: nat-a,", 13, "phones[1].id", "phone id 'nat-a' is used twice"),
        ("mini-b-2e", "mini-a-1f", 13, "phones[1].ntfy_topic", "already used by phone 'nat-a'"),
        ("fallback_phones: [leader]", "fallback_phones: [boss]", 10,
         "escalation.fallback_phones[0]", "no phone has id 'boss'"),
        ("ntfy_topic: mini-b-2e", "ntfy_topic: mini b", 13, "phones[1].ntfy_topic", "pattern"),
        (", ntfy_topic: mini-b-2e", "", 13, "phones[1]", "at least one of"),
    ],
)  # fmt: skip
def test_phone_mistakes_name_line_and_field(
    old: str, new: str, line: int, where: str, says: str
) -> None:
    assert old in SITE
    found = problems(SITE.replace(old, new))
    assert any(ln == line and w == where and says in m for ln, w, m in found), found


def test_warns_about_a_ward_no_phone_hears() -> None:
    text = SITE.replace("wards: [a, b], ntfy", "wards: [a], ntfy").replace(
        "  - {id: nat-b, name: Nat B, wards: [b], ntfy_topic: mini-b-2e}\n", ""
    )
    _site, warnings = check_site(text)
    assert [(w.line, w.where(), w.message) for w in warnings] == [
        (5, "wards[1].id", "no phone hears ward 'b'")
    ]


def test_check_config_prints_warnings_and_still_passes(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(SITE.replace("  ntfy: {url", "  # ntfy: {url"))
    r = subprocess.run(
        [sys.executable, "-m", "app", "check-config", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert "3 phones" in r.stdout
    assert "warning: line 12: phones[0].ntfy_topic: notify.ntfy is not set" in r.stderr


def test_shipped_sites_have_a_phone_per_ward_and_a_leader() -> None:
    for name in ("demo.yaml", "test.yaml"):
        site = load_site(ROOT / "sites" / name)
        heard = {w for p in site.phones for w in p.wards}
        assert heard == {w.id for w in site.wards}
        assert "leader" in {p.id for p in site.phones}
    assert load_site(ROOT / "sites" / "demo.yaml").escalation.fallback_phones == ["leader"]
