"""Each part's `carehub` sub-commands; `app.cli` registers them."""
