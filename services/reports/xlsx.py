"""The freed-hours report as a workbook in the shape of the Danish state's business-case model
(docs/freed-hours.md, "Exports"): benefits as low / expected / high, the assumptions with
their source, and the measurements by night and by ward.

The cells hold the report's own numbers, unrounded (a format only shows two decimals), so the
workbook says exactly what the JSON says; low and high are the 95 % interval's ends carried
through the same arithmetic as the mean (× 365, ÷ H).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import date
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.worksheet.worksheet import Worksheet

DAYS_PER_YEAR = 365
HOURS = "0.00"
SHARE = "0.0%"

TEXTS: dict[str, dict[str, str]] = {
    "da": {
        "sheet_benefits": "Gevinster",
        "sheet_assumptions": "Antagelser",
        "sheet_nights": "Nætter",
        "sheet_wards": "Afdelinger",
        "title": "Frigjorte nattetimer – gevinster til business case",
        "site": "Plejehjem",
        "period": "Nætter",
        "ward": "Afdeling",
        "all_wards": "alle",
        "made": "Lavet",
        "benefit": "Gevinst",
        "unit": "Enhed",
        "low": "Lav (95 %-interval, nedre)",
        "expected": "Forventet (gennemsnit)",
        "high": "Høj (95 %-interval, øvre)",
        "how": "Beregning",
        "per_night": "Frigjorte timer pr. nat",
        "per_year": "Frigjorte timer pr. år",
        "fte": "Årsværk",
        "u_hours": "timer",
        "u_fte": "årsværk",
        "how_per_night": "Målt: gennemsnit pr. nat, 95 %-bootstrap-interval",
        "how_per_year": "Pr. nat × 365",
        "how_fte": "Pr. år ÷ H ({h} timer pr. årsværk)",
        "measured": "Målt i perioden",
        "nights": "Nætter",
        "resident_nights": "Beboer-nætter",
        "freed_total": "Frigjorte timer i alt",
        "coverage": "Dækning (gennemsnit)",
        "entries": "Undgåede besøg",
        "symbol": "Symbol",
        "parameter": "Parameter",
        "value": "Værdi",
        "source": "Kilde",
        "is_default": "Standardværdi?",
        "yes": "ja",
        "no": "nej",
        "source_default": "standardværdi (antaget)",
        "source_site": "stedfilen",
        "source_resident": "stedfilen, pr. beboer",
        "source_measured": "målt",
        "overrides": "Værdier sat pr. beboer",
        "resident": "Beboer",
        "night_window": "Natten",
        "bootstrap": "Bootstrap",
        "bootstrap_text": "{resamples} gentagelser, frø {seed}, niveau {level}, "
        "udvidede percentiler",
        "supervision": "Sensor virker",
        "supervision_text": "fra en besked, indtil 3 hjerteslag-intervaller går uden en ny",
        "defaults_note": "Standardværdierne er pladsholdere, indtil plejehjemmet har målt sine "
        "egne.",
        "night": "Nat (dato hvor den begynder)",
        "hours": "Nattens længde (timer)",
        "per_night_mean": "Frigjorte timer pr. nat",
        "ci_low": "95 %-interval, nedre",
        "ci_high": "95 %-interval, øvre",
    },
    "en": {
        "sheet_benefits": "Benefits",
        "sheet_assumptions": "Assumptions",
        "sheet_nights": "Nights",
        "sheet_wards": "Wards",
        "title": "Freed night-shift hours – benefits for a business case",
        "site": "Care home",
        "period": "Nights",
        "ward": "Ward",
        "all_wards": "all",
        "made": "Made",
        "benefit": "Benefit",
        "unit": "Unit",
        "low": "Low (95 % interval, lower end)",
        "expected": "Expected (mean)",
        "high": "High (95 % interval, upper end)",
        "how": "How",
        "per_night": "Freed hours per night",
        "per_year": "Freed hours per year",
        "fte": "Full-time posts",
        "u_hours": "hours",
        "u_fte": "posts",
        "how_per_night": "Measured: mean per night, 95 % bootstrap interval",
        "how_per_year": "Per night × 365",
        "how_fte": "Per year ÷ H ({h} hours per full-time post)",
        "measured": "Measured in the period",
        "nights": "Nights",
        "resident_nights": "Resident-nights",
        "freed_total": "Freed hours in total",
        "coverage": "Coverage (mean)",
        "entries": "Room entries avoided",
        "symbol": "Symbol",
        "parameter": "Parameter",
        "value": "Value",
        "source": "Source",
        "is_default": "Default?",
        "yes": "yes",
        "no": "no",
        "source_default": "default (assumed)",
        "source_site": "site file",
        "source_resident": "site file, per resident",
        "source_measured": "measured",
        "overrides": "Values set per resident",
        "resident": "Resident",
        "night_window": "The night",
        "bootstrap": "Bootstrap",
        "bootstrap_text": "{resamples} resamples, seed {seed}, level {level}, expanded percentiles",
        "supervision": "A sensor works",
        "supervision_text": "from a message until 3 heartbeat intervals pass without another",
        "defaults_note": "Defaults are placeholders until the care home measures its own values.",
        "night": "Night (date it begins)",
        "hours": "Length of the night (hours)",
        "per_night_mean": "Freed hours per night",
        "ci_low": "95 % interval, lower end",
        "ci_high": "95 % interval, upper end",
    },
}


def benefits(report: Mapping[str, Any]) -> dict[str, tuple[float | None, ...]]:
    """Per night, per year and full-time posts as (low, expected, high): the interval's ends
    and the mean through × 365 and ÷ H (None where the report has no figure)."""
    per = report["freed_hours_per_night"]
    h = float(report["assumptions"]["parameters"]["hours_per_fte"]["value"])
    night = (per["ci95"][0], per["mean"], per["ci95"][1])
    year = tuple(None if v is None else v * DAYS_PER_YEAR for v in night)
    # the expected column is the report's own annual_hours and fte, not a recomputation
    year = (year[0], report["annual_hours"], year[2])
    fte = (
        None if year[0] is None else year[0] / h,
        report["fte"],
        None if year[2] is None else year[2] / h,
    )
    return {"per_night": night, "per_year": year, "fte": fte}


def freed_hours_xlsx(report: Mapping[str, Any], locale: str, ward_name: str, made_at: str) -> bytes:
    """The workbook's bytes, in `locale` ('da' or 'en')."""
    tx = TEXTS[locale]
    wb = Workbook()
    first = wb.active
    assert first is not None  # a new workbook has its one sheet
    _benefits_sheet(first, report, tx, ward_name, made_at)
    _assumptions_sheet(wb.create_sheet(tx["sheet_assumptions"]), report, tx)
    _nights_sheet(wb.create_sheet(tx["sheet_nights"]), report, tx)
    _wards_sheet(wb.create_sheet(tx["sheet_wards"]), report, tx)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _header(ws: Worksheet, row: int, names: list[str]) -> None:
    ws.append(names)
    for cell in ws[row]:
        cell.font = Font(bold=True)


def _widths(ws: Worksheet, widths: list[int]) -> None:
    for i, w in enumerate(widths):
        ws.column_dimensions[chr(ord("A") + i)].width = w


def _benefits_sheet(
    ws: Worksheet, report: Mapping[str, Any], tx: dict[str, str], ward: str, made_at: str
) -> None:
    ws.title = tx["sheet_benefits"]
    ws.append([tx["title"]])
    ws["A1"].font = Font(bold=True, size=14)
    ws.append([tx["site"], report["site"]])
    ws.append([tx["period"], f"{report['from']} – {report['to']}"])
    ws.append([tx["ward"], ward])
    ws.append([tx["made"], made_at])
    ws.append([])
    _header(ws, 7, [tx["benefit"], tx["unit"], tx["low"], tx["expected"], tx["high"], tx["how"]])
    h = report["assumptions"]["parameters"]["hours_per_fte"]["value"]
    rows = benefits(report)
    lines = (
        ("per_night", "u_hours", tx["how_per_night"]),
        ("per_year", "u_hours", tx["how_per_year"]),
        ("fte", "u_fte", tx["how_fte"].format(h=h)),
    )
    for key, unit, how in lines:
        ws.append([tx[key], tx[unit], *rows[key], how])
        for cell in ws[ws.max_row][2:5]:
            cell.number_format = HOURS
    ws.append([])
    ws.append([tx["measured"]])
    ws.cell(ws.max_row, 1).font = Font(bold=True)
    measured = (
        ("nights", report["nights"], "0"),
        ("resident_nights", report["resident_nights"], "0"),
        ("freed_total", report["freed_hours_total"], HOURS),
        ("coverage", report["coverage_mean"], SHARE),
        ("entries", report["room_entries_avoided"], "0"),
    )
    for key, value, number_format in measured:
        ws.append([tx[key], None, None, value])
        ws.cell(ws.max_row, 4).number_format = number_format
    _widths(ws, [30, 10, 28, 24, 28, 48])


def _assumptions_sheet(ws: Worksheet, report: Mapping[str, Any], tx: dict[str, str]) -> None:
    a = report["assumptions"]
    _header(ws, 1, [tx["symbol"], tx["parameter"], tx["value"], tx["source"], tx["is_default"]])
    for key, p in a["parameters"].items():
        source = tx.get(f"source_{p['source']}", p["source"])
        default = tx["yes"] if key in a["defaults_used"] else tx["no"]
        ws.append([p["symbol"], key, p["value"], source, default])
    ws.append([])
    if a["resident_overrides"]:
        ws.append([tx["overrides"]])
        ws.cell(ws.max_row, 1).font = Font(bold=True)
        _header(ws, ws.max_row + 1, [tx["resident"], tx["parameter"], tx["value"], tx["source"]])
        for resident, values in a["resident_overrides"].items():
            for key, value in values.items():
                ws.append([resident, key, value, tx["source_resident"]])
        ws.append([])
    window = a["night_window"]
    boot = a["bootstrap"]
    ws.append([tx["night_window"], f"{window['start']}–{window['end']} ({window['timezone']})"])
    ws.append([tx["bootstrap"], tx["bootstrap_text"].format(**boot)])
    ws.append([tx["supervision"], tx["supervision_text"]])
    ws.append([])
    ws.append([tx["defaults_note"]])
    _widths(ws, [16, 30, 10, 26, 16])


def _nights_sheet(ws: Worksheet, report: Mapping[str, Any], tx: dict[str, str]) -> None:
    _header(
        ws,
        1,
        [tx["night"], tx["hours"], tx["freed_total"], tx["resident_nights"], tx["coverage"]],
    )
    for n in report["by_night"]:
        ws.append(
            [
                date.fromisoformat(n["night"]),
                n["hours"],
                n["freed_hours_total"],
                n["resident_nights"],
                n["coverage_mean"],
            ]
        )
        row = ws[ws.max_row]
        row[0].number_format = "yyyy-mm-dd"
        row[2].number_format = HOURS
        row[4].number_format = SHARE
    _widths(ws, [26, 24, 22, 16, 20])


def _wards_sheet(ws: Worksheet, report: Mapping[str, Any], tx: dict[str, str]) -> None:
    _header(
        ws,
        1,
        [
            tx["ward"],
            tx["nights"],
            tx["resident_nights"],
            tx["freed_total"],
            tx["per_night_mean"],
            tx["ci_low"],
            tx["ci_high"],
            tx["per_year"],
            tx["fte"],
            tx["coverage"],
            tx["entries"],
        ],
    )
    for ward, w in report["by_ward"].items():
        per = w["freed_hours_per_night"]
        ws.append(
            [
                ward,
                w["nights"],
                w["resident_nights"],
                w["freed_hours_total"],
                per["mean"],
                per["ci95"][0],
                per["ci95"][1],
                w["annual_hours"],
                w["fte"],
                w["coverage_mean"],
                w["room_entries_avoided"],
            ]
        )
        row = ws[ws.max_row]
        for cell in row[3:9]:
            cell.number_format = HOURS
        row[9].number_format = SHARE
    _widths(ws, [12, 10, 16, 20, 20, 22, 22, 20, 16, 18, 18])
