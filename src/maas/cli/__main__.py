"""`python -m maas.cli`: the same as the `maas` command."""

from maas.cli import app

app()
