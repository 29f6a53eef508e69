"""The ``lyftr`` command (``python -m lyftr``): lyftr's own commands, a whole line of help each.

``flask --app wsgi ...`` has the same commands, beside Flask's run, shell and routes.
"""

from flask.cli import FlaskGroup

from lyftr import create_app, logs
from lyftr.ops.cli import serve_command
from lyftr.ops.terminal import settings_explained


def _create_app():
    with settings_explained():
        app = create_app()
    logs.configure(app.config["LOG_LEVEL"])
    return app


def command_group():
    """The ``lyftr`` command: lyftr's own commands only (``flask --app wsgi ...`` has them too,
    beside Flask's run, shell and routes)."""
    group = FlaskGroup(
        name="lyftr",
        help="lyftr: operate the webhook ingestion service (configured by the environment, "
        "see README.md).",
        create_app=_create_app,
        add_default_commands=False,
        add_version_option=False,
        load_dotenv=False,
        set_debug_flag=False,
    )
    # The app is lyftr's own and configured by the environment: Flask's options would only confuse.
    group.params = [
        param for param in group.params if param.name not in ("app", "debug", "env_file")
    ]
    group.add_command(serve_command)
    return group


def main():
    command_group().main(prog_name="lyftr")


if __name__ == "__main__":
    main()
