"""Operating lyftr: the command line (``lyftr`` and ``flask --app wsgi``), the retention purge
that runs beside the server, and moving data out and in (export, import, backup).
"""

from lyftr.ops import cli, retention


def init_app(app):
    retention.init_app(app)
    cli.init_app(app)
