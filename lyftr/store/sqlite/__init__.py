"""The SQLite backend: one file in WAL mode, writes serialized through one writer per process
(``writer``), connections tuned and cached per greenlet (``connections``)."""
