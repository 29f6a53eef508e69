"""The console's blueprint, alone: ``access`` and ``pages`` add their views to it."""

from flask import Blueprint

bp = Blueprint(
    "console",
    __name__,
    url_prefix="/ui",
    template_folder="templates",
    static_folder="static",
)
