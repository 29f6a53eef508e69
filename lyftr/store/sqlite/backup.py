"""``lyftr backup`` on SQLite: ``VACUUM INTO`` a new file of the owner's only, then checked."""

import os
import sqlite3
from contextlib import suppress


def write(connections, path):
    """Copy the database into ``path`` (new: created here, 0600, never through a link), checked;
    the file is removed again if anything fails."""
    if path.startswith("file:"):
        raise ValueError("a backup path cannot start with 'file:' (SQLite reads it as a URI)")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, 0o600)
    try:
        created = os.fstat(fd)
        # './' keeps a relative name from being read as a URI by any SQLite build.
        target = path if os.path.isabs(path) else os.path.join(".", path)
        with connections.connection() as connection:
            connection.execute("VACUUM INTO ?", (target,))
        # Still the file created above (not swapped for another meanwhile)?
        written = os.stat(path, follow_symlinks=False)
        if (written.st_dev, written.st_ino) != (created.st_dev, created.st_ino):
            raise RuntimeError(f"{path} was replaced while the backup was written")
        check = sqlite3.connect(target)
        try:
            result = check.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            check.close()
        if result != "ok":
            raise RuntimeError(f"backup failed its integrity check: {result}")
    except BaseException:
        with suppress(OSError):
            os.unlink(path)
        raise
    finally:
        os.close(fd)
