"""The benchmark (run.py and the modules beside it, sqlite_floor.py) and its synthetic data
(synthetic.py)."""
