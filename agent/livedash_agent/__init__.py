"""livedash's host agent: samples this host and pushes it to livedash as line protocol."""

__version__ = "0.1.0"
