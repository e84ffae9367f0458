"""Danish and English for the staff screens; Danish is the default for Danish sites."""

from __future__ import annotations

from typing import Literal

Locale = Literal["da", "en"]
LOCALES: tuple[Locale, ...] = ("da", "en")

MESSAGES: dict[str, dict[Locale, str]] = {
    "app_title": {"da": "CareHub", "en": "CareHub"},
    "login": {"da": "Log ind", "en": "Log in"},
    "logout": {"da": "Log ud", "en": "Log out"},
    "username": {"da": "Brugernavn", "en": "Username"},
    "password": {"da": "Adgangskode", "en": "Password"},
    "login_failed": {
        "da": "Forkert brugernavn eller adgangskode.",
        "en": "Wrong username or password.",
    },
    "login_throttled": {
        "da": "For mange forsøg. Prøv igen om {seconds} sekunder.",
        "en": "Too many attempts. Try again in {seconds} seconds.",
    },
    "alarms": {"da": "Alarmer", "en": "Alarms"},
    "devices": {"da": "Sensorer", "en": "Sensors"},
    "reports": {"da": "Rapporter", "en": "Reports"},
    "no_alarms": {"da": "Ingen aktive alarmer", "en": "No active alarms"},
    "connection_lost": {
        "da": "Forbindelsen til CareHub er tabt – listen er måske ikke opdateret!",
        "en": "Connection to CareHub lost – this list may be out of date!",
    },
    "hub_degraded": {
        "da": "CareHub har en fejl: {what}. Tilkald teknisk hjælp.",
        "en": "CareHub has a fault: {what}. Call technical support.",
    },
    "provisional": {
        "da": "Ikke gemt endnu – CareHub kan ikke gemme lige nu. Gå til beboeren.",
        "en": "Not saved yet – CareHub cannot store right now. Go to the resident.",
    },
    "provisional_technical": {
        "da": "Tilkald teknisk hjælp. Fald vises stadig her.",
        "en": "Call technical support. Falls still show here.",
    },
    "acknowledge": {"da": "Jeg tager den", "en": "I'm on it"},
    "resolve": {"da": "Afslut", "en": "Resolve"},
    "cancel": {"da": "Annuller", "en": "Cancel"},
    "room": {"da": "Stue", "en": "Room"},
    "ago": {"da": "siden", "en": "ago"},
    "escalated": {"da": "Eskaleret", "en": "Escalated"},
    "acknowledged_by": {"da": "Taget af", "en": "Taken by"},
    "count": {"da": "gange", "en": "times"},
    "priority_high": {"da": "Høj", "en": "High"},
    "priority_medium": {"da": "Middel", "en": "Medium"},
    "priority_low": {"da": "Lav", "en": "Low"},
    "rule_fall": {"da": "Fald", "en": "Fall"},
    "rule_diaper_change": {"da": "Ble skal skiftes", "en": "Diaper needs changing"},
    "rule_dose_missed": {"da": "Medicin ikke taget", "en": "Dose missed"},
    "rule_device_fault": {"da": "Fejl på dispenser", "en": "Dispenser fault"},
    "rule_sensor_silent": {"da": "Sensor svarer ikke", "en": "Sensor silent"},
    "rule_store_failing": {
        "da": "Lagring fejler – CareHub kan ikke gemme",
        "en": "Storage failing – CareHub cannot save",
    },
    "rule_battery_low": {"da": "Lavt batteri", "en": "Battery low"},
    "rule_storage_failing": {"da": "Lagring fejler", "en": "Storage failing"},
    "outcome_assisted": {"da": "Hjulpet", "en": "Assisted"},
    "outcome_changed": {"da": "Skiftet", "en": "Changed"},
    "outcome_dose_given": {"da": "Medicin givet", "en": "Dose given"},
    "outcome_false_alarm": {"da": "Falsk alarm", "en": "False alarm"},
    "outcome_no_action_needed": {"da": "Ingen handling nødvendig", "en": "No action needed"},
    "outcome_other": {"da": "Andet", "en": "Other"},
    "state_raised": {"da": "Ny", "en": "New"},
    "state_acknowledged": {"da": "Taget", "en": "Taken"},
    "state_escalated": {"da": "Eskaleret", "en": "Escalated"},
    "state_resolved": {"da": "Afsluttet", "en": "Resolved"},
    "device": {"da": "Sensor", "en": "Sensor"},
    "kind": {"da": "Type", "en": "Kind"},
    "battery": {"da": "Batteri", "en": "Battery"},
    "last_seen": {"da": "Sidst hørt", "en": "Last seen"},
    "online": {"da": "Online", "en": "Online"},
    "offline": {"da": "Offline", "en": "Offline"},
    "never": {"da": "aldrig", "en": "never"},
    "needs_attention": {"da": "Skal ordnes", "en": "Needs attention"},
    "all_ok": {"da": "Alle sensorer virker", "en": "All sensors working"},
    "resident": {"da": "Beboer", "en": "Resident"},
    "kind_fall": {"da": "Faldsensor", "en": "Fall sensor"},
    "kind_diaper": {"da": "Blesensor", "en": "Diaper sensor"},
    "kind_medication": {"da": "Medicindispenser", "en": "Medication dispenser"},
    "kind_bed": {"da": "Sengesensor", "en": "Bed sensor"},
    "round": {"da": "Digitalt tilsyn", "en": "Digital round"},
    "all_wards": {"da": "Alle afdelinger", "en": "All wards"},
    "verdict_ok": {"da": "OK", "en": "OK"},
    "verdict_look": {"da": "Kig efter", "en": "Look"},
    "verdict_visit": {"da": "Besøg", "en": "Visit"},
    "round_in_bed": {"da": "I sengen", "en": "In bed"},
    "round_out_of_bed": {"da": "Ude af sengen", "en": "Out of bed"},
    "round_absent": {"da": "Ikke på stuen", "en": "Not in the room"},
    "round_still": {"da": "stille", "en": "still"},
    "round_moving": {"da": "i bevægelse", "en": "moving"},
    "round_diaper": {"da": "Ble", "en": "Diaper"},
    "round_dose": {"da": "Medicin", "en": "Dose"},
    "round_dose_taken": {"da": "taget", "en": "taken"},
    "round_dose_due": {"da": "ikke taget endnu", "en": "not taken yet"},
    "round_dose_missed": {"da": "ikke taget", "en": "missed"},
    "round_offline": {"da": "Svarer ikke", "en": "Offline"},
    "round_check_due": {"da": "Tilsyn efter plan", "en": "Check due by plan"},
    "round_last_check": {"da": "Sidste tilsyn", "en": "Last check"},
    "round_check_ok": {"da": "Set digitalt", "en": "Checked digitally"},
    "round_checked_ok": {"da": "set digitalt", "en": "checked digitally"},
    "round_visit_needed": {"da": "Besøg nødvendigt", "en": "Visit needed"},
    "round_unavailable": {
        "da": "Tilsynet er ikke tilgængeligt",
        "en": "The round is not available",
    },
    "rule_bed_exit": {"da": "Ude af sengen", "en": "Out of bed"},
    "language": {"da": "English", "en": "Dansk"},
    "sound_on": {"da": "Slå lyd til", "en": "Turn sound on"},
    "rule_self_test": {"da": "Selvtest", "en": "Self-test"},
    "admin": {"da": "Administration", "en": "Admin"},
    "residents": {"da": "Beboere", "en": "Residents"},
    "ward": {"da": "Afdeling", "en": "Ward"},
    "monitoring": {"da": "Overvågning", "en": "Monitoring"},
    "monitoring_is_on": {"da": "Overvågning slået til", "en": "Monitoring on"},
    "monitoring_off": {"da": "Overvågning slået fra", "en": "Monitoring off"},
    "monitoring_off_for": {
        "da": "Overvågning slået fra – ingen alarmer for:",
        "en": "Monitoring off – no alarms for:",
    },
    "switch_off": {"da": "Slå overvågning fra", "en": "Turn monitoring off"},
    "switch_on": {"da": "Slå overvågning til", "en": "Turn monitoring on"},
    "reason": {"da": "Begrundelse", "en": "Reason"},
    "reason_hint": {
        "da": "Skriv ingen navne, fx »Indlagt på hospital« eller »Ønsker ikke sensorer«.",
        "en": "No names, e.g. 'In hospital' or 'Declined sensors'.",
    },
    "reason_required": {
        "da": "Skriv en begrundelse for at slå overvågningen fra.",
        "en": "Give a reason to turn monitoring off.",
    },
    "changed_by": {"da": "Ændret af {by}, {at}", "en": "Changed by {by}, {at}"},
    "saved": {"da": "Gemt.", "en": "Saved."},
    "export": {"da": "Hent beboerens data (JSON)", "en": "Export the resident's data (JSON)"},
    "export_note": {
        "da": "Eksporten indeholder beboerens hændelser, alarmer og hvem der har set data. "
        "Den bliver selv logget.",
        "en": "The export holds the resident's events, alarms and who looked at their data. "
        "It is logged itself.",
    },
    "selftest": {"da": "Selvtest af alarmvejen", "en": "Alarm path self-test"},
    "selftest_note": {
        "da": "Sender en testbesked hele vejen fra sensor-indgangen til alarmtavlen og lukker "
        "alarmen igen.",
        "en": "Sends a test message all the way from the sensor input to the alarm board and "
        "closes the alarm again.",
    },
    "selftest_run": {"da": "Kør selvtest", "en": "Run self-test"},
    "selftest_ok": {
        "da": "Selvtest OK: alarmen nåede frem på {ms} ms.",
        "en": "Self-test OK: the alarm arrived in {ms} ms.",
    },
    "selftest_failed": {
        "da": "Selvtesten fejlede: {stage}. Tilkald teknisk hjælp.",
        "en": "The self-test failed: {stage}. Call technical support.",
    },
    "stage_not_published": {
        "da": "beskeden kom ikke frem til MQTT-brokeren",
        "en": "the message did not reach the MQTT broker",
    },
    "stage_no_event": {
        "da": "gatewayen behandlede ikke beskeden",
        "en": "the gateway did not handle the message",
    },
    "stage_no_alarm": {
        "da": "regelmotoren lavede ingen alarm",
        "en": "the rules engine raised no alarm",
    },
    "nav_main": {"da": "main", "en": "main"},  # not translated yet: the same in both
    "demo_note": {  # not translated yet: the same in both
        "da": "DEMO – simulated care home",
        "en": "DEMO – simulated care home",
    },
    "unit_s": {"da": "s", "en": "s"},
    "unit_min": {"da": "min", "en": "min"},
    "unit_h": {"da": "t", "en": "t"},  # not translated yet: the same in both
    "attention_offline": {"da": "Offline – tjek sensoren", "en": "Offline"},
    "attention_battery_low": {"da": "Lavt batteri – skift det", "en": "Battery low"},
    "report_from": {"da": "Fra", "en": "From"},
    "report_to": {"da": "Til", "en": "To"},
    "report_all_wards": {"da": "Alle", "en": "All"},
    "report_show": {"da": "OK", "en": "OK"},
    "report_freed_hours": {"da": "Frigjorte nattetimer", "en": "Freed night-shift hours"},
    "report_total": {"da": "I alt", "en": "Total"},
    "report_per_night_ci": {"da": "Pr. nat (95 % CI)", "en": "Per night (95 % CI)"},
    "report_per_year": {"da": "Pr. år", "en": "Per year"},
    "report_fte": {"da": "årsværk", "en": "FTE"},
    "report_coverage": {"da": "Dækning", "en": "Coverage"},
    "report_room_entries_avoided": {"da": "Undgåede besøg", "en": "Room entries avoided"},
    "report_resident_nights": {"da": "Beboer-nætter", "en": "Resident-nights"},
    "report_equipment_and_alarms": {
        "da": "Brug af udstyr og alarmer",
        "en": "Equipment and alarms",
    },
    "report_acknowledge_times": {
        "da": "Kvittering, median / p90",
        "en": "Acknowledge, median / p90",
    },
    "report_false_alarms": {"da": "Falske alarmer", "en": "False alarms"},
    "report_doses_on_time": {"da": "Medicin taget til tiden", "en": "Doses taken on time"},
    "report_diaper_changes": {
        "da": "Bleskift pr. beboer-nat",
        "en": "Diaper changes per resident-night",
    },
    "report_most_simultaneous": {
        "da": "Flest samtidige alarmer",
        "en": "Most simultaneous alarms",
    },
    "report_drivers": {"da": "Hvad driver tallet?", "en": "What drives the number?"},
    "report_drivers_note": {
        "da": "Frigjorte timer pr. nat, hvis én antagelse ændres for hele plejehjemmet "
        "(de øvrige som sat).",
        "en": "Freed hours per night if one assumption changes for the whole home "
        "(the others as set).",
    },
    "report_assumption": {"da": "Antagelse", "en": "Assumption"},
    "report_values_to_hours": {"da": "Værdier → timer pr. nat", "en": "Values → hours per night"},
    "report_swing": {"da": "Udsving", "en": "Swing"},
    "report_assumptions": {"da": "Antagelser", "en": "Assumptions"},
    "report_parameter": {"da": "Parameter", "en": "Parameter"},
    "report_value": {"da": "Værdi", "en": "Value"},
    "report_source": {"da": "Kilde", "en": "Source"},
    "report_digital_checks": {"da": "Digitalt tilsyn", "en": "Digital checks"},
    "report_digital_checks_total": {"da": "Tilsyn sat digitalt", "en": "Checks done digitally"},
    "report_checks_per_resident_night": {
        "da": "Digitale tilsyn pr. beboer-nat",
        "en": "Digital checks per resident-night",
    },
    "report_share_of_planned": {
        "da": "Andel af planlagte tilsyn sat digitalt",
        "en": "Share of planned checks done digitally",
    },
    "report_visit_needed_after_check": {
        "da": "Heraf besøg nødvendigt",
        "en": "Of which a visit was needed",
    },
    "report_alarm_visits_per_resident_night": {
        "da": "Besøg på alarm pr. beboer-nat",
        "en": "Alarm visits per resident-night",
    },
    "report_planned_checks": {"da": "Planlagte tilsyn", "en": "Planned checks"},
    "report_nights": {"da": "Nætter", "en": "Nights"},
    # the charts' titles; not translated yet: the Danish page shows them in English too
    "chart_freed": {"da": "Freed hours per night", "en": "Freed hours per night"},
    "chart_by_hour": {"da": "Alarms by hour of night", "en": "Alarms by hour of night"},
    "chart_concurrency": {
        "da": "Minutes with two or more open alarms, by hour",
        "en": "Minutes with two or more open alarms, by hour",
    },
    "chart_response": {
        "da": "Response time (acknowledged → resolved)",
        "en": "Response time (acknowledged → resolved)",
    },
    "chart_coverage": {"da": "Uptime per device at night", "en": "Uptime per device at night"},
    "phones": {"da": "Telefoner", "en": "Phones"},
    "phones_intro": {
        "da": "Hvad hver telefon har fået sendt, nyeste først.",
        "en": "What each phone was sent, newest first.",
    },
    "nothing_sent": {"da": "Intet sendt endnu.", "en": "Nothing sent yet."},
    "ack_title": {"da": "Tag alarmen", "en": "Take the alarm"},
    "ack_question": {
        "da": "Tager du denne alarm som {phone}?",
        "en": "Are you taking this alarm as {phone}?",
    },
    "ack_button": {"da": "Jeg tager den", "en": "I'm on it"},
    "ack_done": {"da": "Tak. Alarmen er taget af {who}.", "en": "Thank you. Taken by {who}."},
    "told": {"da": "Sendt til", "en": "Sent to"},
}


def translator(locale: Locale) -> dict[str, str]:
    """All messages in one language, for templates and the page scripts."""
    return {key: texts[locale] for key, texts in MESSAGES.items()}
