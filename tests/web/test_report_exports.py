"""The freed-hours exports for a municipality (docs/freed-hours.md, "Exports"): the workbook
holds the JSON's numbers, the PDF shows the page's figures on one page, both in Danish and
English, for managers only."""

from __future__ import annotations

import subprocess
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from openpyxl import load_workbook

from carehub.site import Site
from services.web.i18n import translator
from services.web.report_pdf import freed_hours_pdf
from tests.support.server import ServerThread
from tests.web.conftest import HISTORY_FIRST, HISTORY_LAST, bearer
from tests.web.test_browser_basic import ARTIFACTS

PERIOD = {"from": HISTORY_FIRST, "to": HISTORY_LAST}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _get(
    server: ServerThread,
    path: str,
    user: str = "mads",
    cookies: dict[str, str] | None = None,
    **params: str,
) -> httpx.Response:
    return httpx.get(
        f"{server.url}{path}",
        params={**PERIOD, **params},
        headers=bearer(server.url, user),
        cookies=cookies,
        timeout=60,
    )


def _report(server: ServerThread, **params: str) -> dict[str, Any]:
    r = _get(server, "/api/reports/freed-hours", **params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _pdftotext(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    out = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True, text=True
    )
    return out.stdout


def _pages(pdf: bytes, tmp_path: Path) -> int:
    path = tmp_path / "pages.pdf"
    path.write_bytes(pdf)
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, check=True, text=True)
    line = next(x for x in info.stdout.splitlines() if x.startswith("Pages:"))
    return int(line.split()[1])


def _png(pdf: bytes, name: str) -> None:
    """The PDF's page as a PNG in test-artifacts/, to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.pdf"
    path.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-png", "-r", "70", str(path), str(ARTIFACTS / name)], check=True)


@pytest.mark.parametrize("lang", ["da", "en"])
def test_workbook_holds_the_json_numbers(history_server: ServerThread, lang: str) -> None:
    """Benefits low / expected / high are the interval's ends and the mean, per night, × 365
    and ÷ H; the nights and wards sheets hold the JSON's rows; the assumptions say which
    values are defaults; sheet names and headings follow the language."""
    fh = _report(history_server)
    r = _get(history_server, "/api/reports/freed-hours.xlsx", lang=lang)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == XLSX
    assert r.headers["content-disposition"].endswith(f'-{HISTORY_FIRST}-{HISTORY_LAST}.xlsx"')
    path = Path(ARTIFACTS) / f"freed-hours-{lang}.xlsx"
    ARTIFACTS.mkdir(exist_ok=True)
    path.write_bytes(r.content)
    wb = load_workbook(path)
    names = {"da": ["Gevinster", "Antagelser", "Nætter", "Afdelinger"]}
    names["en"] = ["Benefits", "Assumptions", "Nights", "Wards"]
    assert wb.sheetnames == names[lang]
    benefits = wb.worksheets[0]
    rows = {row[0]: row for row in benefits.iter_rows(values_only=True) if row and row[0]}
    per = fh["freed_hours_per_night"]
    h = fh["assumptions"]["parameters"]["hours_per_fte"]["value"]
    label = {"da": ("Frigjorte timer pr. nat", "Frigjorte timer pr. år", "Årsværk")}
    label["en"] = ("Freed hours per night", "Freed hours per year", "Full-time posts")
    night, year, fte = (rows[x] for x in label[lang])
    assert per["ci95"][0] < per["mean"] < per["ci95"][1]  # a real interval, not three equal cells
    assert night[2:5] == pytest.approx((per["ci95"][0], per["mean"], per["ci95"][1]), rel=1e-12)
    assert year[2:5] == pytest.approx(
        (per["ci95"][0] * 365, fh["annual_hours"], per["ci95"][1] * 365), rel=1e-12
    )
    assert fte[2:5] == pytest.approx(
        (per["ci95"][0] * 365 / h, fh["fte"], per["ci95"][1] * 365 / h), rel=1e-12
    )
    nights = list(wb.worksheets[2].iter_rows(min_row=2, values_only=True))
    assert len(nights) == len(fh["by_night"]) == 9
    for row, n in zip(nights, fh["by_night"], strict=True):
        assert row[0].date() == date.fromisoformat(n["night"])
        assert row[1:] == pytest.approx(
            (n["hours"], n["freed_hours_total"], n["resident_nights"], n["coverage_mean"])
        )
    wards = {row[0]: row for row in wb.worksheets[3].iter_rows(min_row=2, values_only=True)}
    assert set(wards) == set(fh["by_ward"])
    for ward, w in fh["by_ward"].items():
        p = w["freed_hours_per_night"]
        assert wards[ward][3:9] == pytest.approx(
            (w["freed_hours_total"], p["mean"], *p["ci95"], w["annual_hours"], w["fte"])
        )
    assumptions: dict[str, Any] = {}
    for row in wb.worksheets[1].iter_rows(min_row=2, values_only=True):
        if not row[0]:
            break  # the parameters end; per-resident overrides follow
        assumptions[row[1]] = row
    assert set(assumptions) == set(fh["assumptions"]["parameters"])
    yes = {"da": "ja", "en": "yes"}[lang]
    default_text = {"da": "standardværdi (antaget)", "en": "default (assumed)"}[lang]
    for key, p in fh["assumptions"]["parameters"].items():
        assert assumptions[key][2] == p["value"]
        assert (assumptions[key][4] == yes) == (key in fh["assumptions"]["defaults_used"])
        assert (assumptions[key][3] == default_text) == (p["source"] == "default")
    assert fh["assumptions"]["defaults_used"]  # the test site leaves some at their default
    per_resident = {"da": "stedfilen, pr. beboer", "en": "site file, per resident"}[lang]
    everything = list(wb.worksheets[1].iter_rows(values_only=True))
    for resident, values in fh["assumptions"]["resident_overrides"].items():
        for key, value in values.items():
            assert (resident, key, value, per_resident, None) in everything


def test_workbook_follows_the_ward_and_the_language_cookie(history_server: ServerThread) -> None:
    """A ward's workbook has that ward only; without ?lang= the language cookie decides, and
    without that the site's locale (English on the test site), as on the pages."""
    r = _get(history_server, "/api/reports/freed-hours.xlsx")
    (ARTIFACTS / "freed-hours-site.xlsx").write_bytes(r.content)
    assert load_workbook(ARTIFACTS / "freed-hours-site.xlsx").sheetnames[0] == "Benefits"
    fh = _report(history_server, ward="b")
    r = _get(
        history_server, "/api/reports/freed-hours.xlsx", cookies={"carehub_lang": "da"}, ward="b"
    )
    path = ARTIFACTS / "freed-hours-b.xlsx"
    path.write_bytes(r.content)
    wb = load_workbook(path)
    assert wb.sheetnames[0] == "Gevinster"
    wards = [row[0] for row in wb.worksheets[3].iter_rows(min_row=2, values_only=True)]
    assert wards == ["b"]
    night = next(
        row
        for row in wb.worksheets[0].iter_rows(values_only=True)
        if row[0] == "Frigjorte timer pr. nat"
    )
    assert night[3] == pytest.approx(fh["freed_hours_per_night"]["mean"], rel=1e-12)


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        ("da", ["Frigjorte nattetimer", "Antagelser", "standardværdi (antaget)", "årsværk"]),
        ("en", ["Freed night-shift hours", "Assumptions", "default (assumed)", "FTE"]),
    ],
)
def test_pdf_is_one_page_with_the_page_figures(
    history_server: ServerThread, tmp_path: Path, lang: str, words: list[str]
) -> None:
    """The PDF's text shows the figures as the /reports page formats them (total, mean with
    its 95 % interval, per year and posts), the assumptions with the defaults named, in the
    language asked for, on one page."""
    fh = _report(history_server)
    r = _get(history_server, "/api/reports/freed-hours.pdf", lang=lang)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    text = _pdftotext(r.content, tmp_path)
    per = fh["freed_hours_per_night"]
    fte = {"da": "årsværk", "en": "FTE"}[lang]
    assert f"{fh['freed_hours_total']:.1f} h" in text
    assert f"{per['mean']:.2f} h ({per['ci95'][0]:.2f}–{per['ci95'][1]:.2f})" in text
    assert f"{fh['annual_hours']:.0f} h = {fh['fte']:.2f} {fte}" in text
    for word in words:
        assert word in text
    defaults = fh["assumptions"]["defaults_used"]
    lines = [x for x in text.splitlines() if any(f" {k} " in f" {x} " for k in defaults)]
    assert len(lines) >= len(defaults)
    assert _pages(r.content, tmp_path) == 1
    _png(r.content, f"freed-hours-pdf-{lang}")


def test_pdf_before_after_section_renders_when_given_and_stays_one_page(
    test_site: Site, history_server: ServerThread, tmp_path: Path
) -> None:
    """The before/after block appears with its rows when the before/after report gives one,
    and the page still fits on one sheet; without one the PDF has no such heading."""
    fh = _report(history_server)
    before_after = {
        "before": {"from": "2026-09-01", "to": "2026-09-30"},
        "after": {"from": fh["from"], "to": fh["to"]},
        "rows": [
            {"label": "Nattevisitter pr. nat", "before": 41.0, "after": 17.5, "unit": ""},
            {"label": "Minutter pr. nat", "before": 312.0, "after": None, "unit": "min"},
        ],
    }
    common: dict[str, Any] = {
        "site": test_site,
        "user": "mads",
        "ward_name": "alle",
        "made_at": "2026-11-20 12:00",
    }
    pdf = freed_hours_pdf(fh, "da", before_after=before_after, **common)
    text = _pdftotext(pdf, tmp_path)
    assert translator("da")["report_before_after"] in text
    assert "Nattevisitter pr. nat" in text
    assert "-23.50" in text  # the change, after − before
    assert "2026-09-01 – 2026-09-30" in text
    assert _pages(pdf, tmp_path) == 1
    _png(pdf, "freed-hours-pdf-before-after")
    without = _pdftotext(freed_hours_pdf(fh, "da", before_after=None, **common), tmp_path)
    assert translator("da")["report_before_after"] not in without


def test_before_period_params_pass_validation(history_server: ServerThread) -> None:
    """A before period needs both ends in order; given, the PDF still answers (the
    before/after report is wired at the integration point)."""
    r = _get(history_server, "/api/reports/freed-hours.pdf", before_from="2026-09-01")
    assert r.status_code == 422
    r = _get(
        history_server,
        "/api/reports/freed-hours.pdf",
        before_from="2026-09-30",
        before_to="2026-09-01",
    )
    assert r.status_code == 422
    r = _get(
        history_server,
        "/api/reports/freed-hours.pdf",
        before_from="2026-09-01",
        before_to="2026-09-30",
    )
    assert r.status_code == 200


@pytest.mark.parametrize("path", ["/api/reports/freed-hours.pdf", "/api/reports/freed-hours.xlsx"])
def test_exports_are_for_managers(history_server: ServerThread, path: str) -> None:
    """Night staff get 403, no login 401, a manager and an admin the file."""
    assert httpx.get(f"{history_server.url}{path}", params=PERIOD).status_code == 401
    assert _get(history_server, path, user="sofie").status_code == 403
    assert _get(history_server, path, user="mads").status_code == 200
    assert _get(history_server, path, user="ida").status_code == 200
