"""One JSON object per log line, for the app and for Gunicorn alike."""

import logging
import sys
from datetime import UTC, datetime

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


def configure(level):
    """Send the root logger's records to stdout as JSON, once per process."""
    root = logging.getLogger()
    if not any(isinstance(h.formatter, LineFormatter) for h in root.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(LineFormatter())
        root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("lyftr").setLevel(level)
    # Alembic narrates every run ("Context impl ...", plugin setup) at INFO in every worker; the
    # migrations that really ran are logged by lyftr.store.schema instead.
    logging.getLogger("alembic").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
