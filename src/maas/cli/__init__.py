"""The `maas` command line: thin command modules that parse, call the library and print."""

from .app import app

__all__ = ["app"]
