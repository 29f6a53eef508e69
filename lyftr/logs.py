"""One JSON object per log line, for the app and for Gunicorn alike."""

import logging
import sys
from datetime import UTC, datetime

import click
from pythonjsonlogger.json import JsonFormatter

# Fields of a LogRecord that are not worth a key in every line.
_DROP = ("color_message",)


class LineFormatter(JsonFormatter):
    """``{"ts", "level", "logger", "msg", ...extra}``; a traceback in ``exc_info`` as a string."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault(
            "rename_fields", {"levelname": "level", "name": "logger", "message": "msg"}
        )
        super().__init__("%(levelname)s %(name)s %(message)s", *args, **kwargs)

    def add_fields(self, log_record, record, message_dict):
        log_record["ts"] = (
            datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )
        super().add_fields(log_record, record, message_dict)
        for key in _DROP:
            log_record.pop(key, None)


class ServerOrCommandHandler(logging.StreamHandler):
    """stdout for the server (one stream of JSON lines), stderr while a command runs in this
    thread: a command's stdout is its data (``flask export > file``), and a log line there would
    corrupt it. stdout is the one of when logging was set up; stderr is looked up at each record,
    so a command's replaced stderr (a test's runner) is the one written."""

    def __init__(self):
        super().__init__()
        self._server_stream = sys.stdout

    @property
    def stream(self):
        if click.get_current_context(silent=True) is not None:
            return sys.stderr
        return self._server_stream

    @stream.setter
    def stream(self, value):
        pass  # always looked up, never stored


def configure(level):
    """Send the root logger's records as JSON lines to stdout (stderr during a command), once per
    process."""
    root = logging.getLogger()
    if not any(isinstance(h.formatter, LineFormatter) for h in root.handlers):
        handler = ServerOrCommandHandler()
        handler.setFormatter(LineFormatter())
        root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("lyftr").setLevel(level)
    # Alembic narrates every run ("Context impl ...", plugin setup) at INFO in every worker; the
    # migrations that really ran are logged by lyftr.store.schema instead.
    logging.getLogger("alembic").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
