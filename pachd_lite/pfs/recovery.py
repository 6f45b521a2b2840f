"""Start-up repairs of what a crash (kill -9, power loss) can leave half done in PFS."""

from __future__ import annotations

import logging

from pachd_lite.pfs import garbage
from pachd_lite.pfs.model import PfsContext
from pachd_lite.storage import db

log = logging.getLogger("pachd_lite.pfs")


def drop_interrupted_one_off_writes(ctx: PfsContext) -> list[str]:
    """Drop the open commits of one-off writes the server died in the middle of.

    A one-off write (ModifyFile naming a branch whose head is finished) makes its commit and
    finishes it when the upload ends; pachd never shows such a commit half written. After a crash
    the commit would stay open, the branch head with it, and later writes would join it. It is
    removed with its whole commit set (the commits propagated downstream and their jobs), and the
    branch heads go back to the parents. Returns the dropped commit set ids.
    """
    dropped: list[str] = []
    with ctx.db.tx() as conn:
        rows = conn.execute(
            "SELECT w.commit_id, c.commit_set, c.finished FROM one_off_writes w "
            "LEFT JOIN commits c ON c.id = w.commit_id"
        ).fetchall()
        for commit_id, commit_set, finished in rows:
            conn.execute("DELETE FROM one_off_writes WHERE commit_id = ?", (commit_id,))
            if commit_set is None or finished is not None:
                continue
            members = conn.execute(
                "SELECT id, parent_id, finished FROM commits WHERE commit_set = ?", (commit_set,)
            ).fetchall()
            ids = {m["id"] for m in members}
            blocked = any(m["finished"] is not None for m in members) or any(
                conn.execute("SELECT 1 FROM commits WHERE parent_id = ? LIMIT 1", (m["id"],)).fetchone()
                for m in members
            )
            outside = conn.execute(
                f"SELECT 1 FROM commit_provenance WHERE from_commit_id IN ({','.join('?' * len(ids))}) "
                f"AND commit_id NOT IN ({','.join('?' * len(ids))}) LIMIT 1",
                (*ids, *ids),
            ).fetchone()
            if blocked or outside:
                log.warning("interrupted one-off write %s has later commits: left open", commit_set)
                continue
            for m in members:
                conn.execute("UPDATE branches SET head_id = ? WHERE head_id = ?", (m["parent_id"], m["id"]))
                conn.execute("DELETE FROM files WHERE commit_id = ?", (m["id"],))
                conn.execute(
                    "DELETE FROM commit_provenance WHERE commit_id = ? OR from_commit_id = ?",
                    (m["id"], m["id"]),
                )
                conn.execute("DELETE FROM commits WHERE id = ?", (m["id"],))
            db.delete_jobs(conn, job_id=commit_set)
            dropped.append(commit_set)
            garbage.note_garbage(conn)
    for commit_set in dropped:
        log.info(
            "dropped commit set %s: a one-off write the server did not finish before it stopped", commit_set
        )
    return dropped
