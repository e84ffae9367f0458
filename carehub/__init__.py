"""CareHub core: settings, the site model, clocks, broker handling and the command line."""

__version__ = "0.1.0"
