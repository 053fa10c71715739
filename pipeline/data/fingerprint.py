"""Content fingerprints of the files a project reads from outside DVC's view (images, lists, checkpoints),
cheap to renew: a file is hashed again only when its size, modification time or inode changed.

The digests are of content, so every machine holding the same files writes the same fingerprint, whatever
their paths and times; the (size, mtime, inode) -> md5 memo is this clone's own (a SQLite file).
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path

from pipeline.errors import RdistillError


def md5_file(path: str | Path) -> str:
    """Hex md5 of a file's bytes."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


class DigestMemo:
    """md5 of files, remembered by absolute path with the (size, mtime_ns, inode) they had when hashed."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, timeout=60)
        self.db.execute("CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER, mtime INTEGER, "
                        "inode INTEGER, md5 TEXT)")
        self.hashed = 0

    def __enter__(self) -> "DigestMemo":
        return self

    def __exit__(self, *exc) -> None:
        self.db.commit()
        self.db.close()

    def digests(self, paths: Iterable[str | Path], name: Callable[[int], str] | None = None) -> list[tuple[int, str]]:
        """(size, md5) of every file; a missing one is an error naming it (`name(i)`: how to name the i-th)."""
        known = {row[0]: row[1:] for row in self.db.execute("SELECT path, size, mtime, inode, md5 FROM files")}
        out, fresh = [], []
        for i, path in enumerate(paths):
            key = os.path.abspath(path)
            try:
                st = os.stat(key)
            except OSError as exc:
                raise RdistillError(f"{name(i) + ': ' if name else ''}{path}: {exc.strerror}") from None
            stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
            memo = known.get(key)
            if memo is None or tuple(memo[:3]) != stamp:
                memo = (*stamp, md5_file(key))
                fresh.append((key, *memo))
            out.append((st.st_size, memo[3]))
        if fresh:
            self.db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)", fresh)
        self.hashed += len(fresh)
        return out


def rows_digest(lines: Iterable[str]) -> str:
    """sha256 of text lines, in order."""
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode())
        digest.update(b"\n")
    return digest.hexdigest()
