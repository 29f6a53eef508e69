"""End-to-end tests: the real Gunicorn server over HTTP (a package, so its conftest and modules
never shadow the unit tests' ``conftest`` or test modules of the same name)."""
