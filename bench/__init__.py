"""CareHub's benchmarks (issue 9): `python -m bench [--quick]` or `carehub bench`.

One module per benchmark — `broker_limit` (the ceiling), `ingest`, `latency`, `reports` (with
`history`), `rss` — plus what they share: `sites` (generated site files), `messages` and
`wire` (device messages on a raw MQTT socket), `loadgen` (a paced load in its own process),
`procs` (Mosquitto, `carehub run`), `sampler` and `hotspots` (profiles). `run` gathers one
JSON object of figures; docs/performance.md says what each means and the latest values.
"""
