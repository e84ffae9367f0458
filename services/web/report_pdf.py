"""The freed-hours report as one printable PDF page (docs/freed-hours.md, "Exports").

Rendered by WeasyPrint from `reports/print.html`, which includes the same parts as the
/reports page (the figures, the assumptions, before/after) and the same chart in print
colours, so the PDF formats every figure as the page does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from services.reports import svg
from services.web.i18n import Locale, translator
from services.web.pages import templates
from services.web.report_charts import freed_chart

PRINT_CSS = Path(__file__).resolve().parent / "static" / "report-print.css"


def freed_hours_pdf(
    fh: dict[str, Any],
    locale: Locale,
    *,
    site: Any,
    user: str,
    ward_name: str,
    made_at: str,
    before_after: dict[str, Any] | None,
) -> bytes:
    """The PDF's bytes. `site` is the site file's model (its name heads the page)."""
    from weasyprint import CSS, HTML  # heavy: loaded when a PDF is asked for

    t = translator(locale)
    html = templates.get_template("reports/print.html").render(
        t=t,
        locale=locale,
        site=site,
        user=user,
        fh=fh,
        first=fh["from"],
        last=fh["to"],
        ward_name=ward_name,
        made_at=made_at,
        charts={"freed": svg.for_print(freed_chart(fh, t, locale))},
        before_after=before_after,
    )
    pdf: bytes = HTML(string=html).write_pdf(stylesheets=[CSS(filename=str(PRINT_CSS))])
    return pdf
