"""Site files for the benchmarks: large native-protocol sites, and the demo site copied N times.

Benchmarks need many device ids (background load from many devices, 10,000 connected
devices) and a 500-resident home for the reports. Sites are written as YAML into a temporary
folder and loaded through `carehub.site.load_site`, exactly as a care home's file would be.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from carehub.site import Site, load_site

REPO = Path(__file__).resolve().parent.parent
DEMO_SITE = REPO / "sites" / "demo.yaml"
ROOMS_PER_WARD = 25


@dataclass(frozen=True, slots=True)
class SiteFile:
    """A generated site: where its YAML is, and the parsed model."""

    path: Path
    site: Site

    def device_ids(self, kind: str | None = None) -> list[str]:
        """Device ids (first binding of each), optionally of one kind, in file order."""
        seen: dict[str, None] = {}
        for d in self.site.devices:
            if kind is None or d.kind.value == kind:
                seen.setdefault(d.id, None)
        return list(seen)


def _write(folder: Path, name: str, data: dict[str, Any]) -> SiteFile:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, width=200), encoding="utf-8")
    # The same validation as load_site, without parsing our own YAML back: PyYAML's
    # pure-Python loader takes seconds on a 10,000-device file (the hub still does that).
    return SiteFile(path, Site.model_validate(data))


def native_site(
    folder: Path, residents: int, site_id: str = "benchhjem", ntfy_url: str | None = None
) -> SiteFile:
    """`residents` residents, one room each, every resident with a fall sensor (room), a
    diaper sensor and a dispenser, all native CareHub firmware (the default model `carehub-v1`):
    3 devices per resident. With `ntfy_url`, each ward has a phone on that ntfy server, its
    topic `bench-{ward}` (docs/notifications.md)."""
    wards: list[dict[str, Any]] = []
    people: list[dict[str, Any]] = []
    devices: list[dict[str, Any]] = []
    for i in range(residents):
        ward = f"w{i // ROOMS_PER_WARD:03d}"
        room = f"{ward}-{i % ROOMS_PER_WARD + 1:02d}"
        if not wards or wards[-1]["id"] != ward:
            wards.append({"id": ward, "name": f"Afdeling {ward}", "rooms": []})
        wards[-1]["rooms"].append(room)
        rid = f"r-{i + 1:05d}"
        people.append({"id": rid, "room": room})
        devices += [
            {"id": f"fall-{i + 1:05d}", "kind": "fall", "model": "carehub-v1", "room": room},
            {"id": f"diaper-{i + 1:05d}", "kind": "diaper", "model": "carehub-v1", "resident": rid},
            {
                "id": f"med-{i + 1:05d}",
                "kind": "medication",
                "model": "carehub-v1",
                "resident": rid,
            },
        ]
    data: dict[str, Any] = {
        "site": site_id,
        "name": f"Benchmark home, {residents} residents",
        "wards": wards,
        "residents": people,
        "devices": devices,
    }
    if ntfy_url is not None:
        data["notify"] = {"public_url": "http://carehub.bench.invalid", "ntfy": {"url": ntfy_url}}
        data["phones"] = [
            {"id": f"phone-{w['id']}", "name": f"Phone {w['id']}", "wards": [w["id"]],
             "ntfy_topic": f"bench-{w['id']}"}
            for w in wards
        ]  # fmt: skip
    return _write(folder, f"{site_id}-{residents}", data)


def copy_suffix(copy: int) -> str:
    """What copy `copy` of the demo site appends to every ward, room, resident and device id."""
    return f"-c{copy:02d}"


def demo_copies(folder: Path, residents: int) -> SiteFile:
    """The demo site repeated until it has `residents` residents (ids suffixed `-cNN`), with
    its mix of models and per-resident overrides; the rooms and devices of residents past the
    count are left out."""
    demo = yaml.safe_load(DEMO_SITE.read_text(encoding="utf-8"))
    wards: list[dict[str, Any]] = []
    people: list[dict[str, Any]] = []
    devices: list[dict[str, Any]] = []
    copy = 0
    while len(people) < residents:
        sfx = copy_suffix(copy)
        kept = demo["residents"][: residents - len(people)]
        rooms = {r["room"] for r in kept}
        ids = {r["id"] for r in kept}
        for w in demo["wards"]:
            mine = [room + sfx for room in w["rooms"] if room in rooms]
            if mine:
                wards.append({"id": w["id"] + sfx, "name": f"{w['name']} {copy}", "rooms": mine})
        for r in kept:
            person = {k: v for k, v in r.items() if k != "name"}
            person.update(id=r["id"] + sfx, room=r["room"] + sfx)
            people.append(person)
        for d in demo["devices"]:
            if d.get("room") in rooms or d.get("resident") in ids:
                dev = dict(d, id=d["id"] + sfx)
                for key in ("room", "resident", "topic"):
                    if key in dev:
                        dev[key] = dev[key] + sfx
                devices.append(dev)
        copy += 1
    data = {
        **{k: v for k, v in demo.items() if k not in ("wards", "residents", "devices")},
        "site": demo["site"],
        "name": f"{demo['name']} x{copy}",
        "wards": wards,
        "residents": people,
        "devices": devices,
    }
    return _write(folder, f"demo-{residents}", data)


def demo_site() -> SiteFile:
    """The shipped demo site itself."""
    return SiteFile(DEMO_SITE, load_site(DEMO_SITE))
