"""The benchmark (run.py, sqlite_floor.py) and its synthetic data (synthetic.py)."""
