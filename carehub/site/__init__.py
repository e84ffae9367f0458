"""The site (docs/site-file.md): one care home's wards, rooms, residents and devices.

`model` is the site file's schema, `loader` reads and checks a file, `index` answers the
pipeline's look-ups, `bindings` says when a device was where, `night` lays out the night
calendar and `benefit` resolves the freed-hours parameters. The public names are re-exported
here so callers need not know which module holds them.
"""

from carehub.site.benefit import BENEFIT_DEFAULTS, ResolvedBenefit
from carehub.site.bindings import Binding
from carehub.site.index import SiteIndex
from carehub.site.loader import (
    Problem,
    SiteFileError,
    check_site,
    check_site_file,
    load_site,
    parse_site,
)
from carehub.site.model import (
    RULE_NAMES,
    SLUG,
    BatteryLowRule,
    BedExitRule,
    Benefit,
    BindingTime,
    Device,
    DeviceFaultRule,
    DeviceKind,
    DiaperChangeRule,
    DoseMissedRule,
    Escalation,
    EscalationTarget,
    EspaLink,
    FallRule,
    NightWindow,
    Notify,
    NtfyServer,
    Phone,
    Priority,
    Resident,
    ResponseMinutes,
    RoundSettings,
    Rules,
    SensorSilentRule,
    Site,
    Slug,
    Strict,
    Ward,
)

__all__ = [
    "BENEFIT_DEFAULTS",
    "RULE_NAMES",
    "SLUG",
    "BatteryLowRule",
    "BedExitRule",
    "Benefit",
    "Binding",
    "BindingTime",
    "Device",
    "DeviceFaultRule",
    "DeviceKind",
    "DiaperChangeRule",
    "DoseMissedRule",
    "Escalation",
    "EscalationTarget",
    "EspaLink",
    "FallRule",
    "NightWindow",
    "Notify",
    "NtfyServer",
    "Phone",
    "Priority",
    "Problem",
    "Resident",
    "ResolvedBenefit",
    "ResponseMinutes",
    "RoundSettings",
    "Rules",
    "SensorSilentRule",
    "Site",
    "SiteFileError",
    "SiteIndex",
    "Slug",
    "Strict",
    "Ward",
    "check_site",
    "check_site_file",
    "load_site",
    "parse_site",
]
