"""Log tailing: read what a job wrote to job.log and events.jsonl since a byte offset.

Offsets are byte positions in the files, so a client that lost its connection resumes
exactly where it stopped. Only whole lines are returned (a line still being written
waits for its newline) unless the job is finished. Every message is labelled with the
offset it was really read from: an offset past the end of a file (the file was
rewritten) restarts at 0, and an events offset in the middle of a line skips to the
next line, so each event message is one whole JSON line.

job.log and events.jsonl live in the runs root, which clients can write to: they are
opened without following a symlink and read only when they are regular files (a
planted link, FIFO or device reads as empty), and an events line that is not a JSON
object with a string ``type`` is sent as an ``unparsed`` event.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .runtime import FINAL_STATES, JobDir
from .runtime.logread import MAX_CHUNK, open_regular, read_from

__all__ = ["JobFollower", "read_from"]


@dataclass
class JobFollower:
    """Follows one job folder from given offsets: each :meth:`read` returns the messages
    written since the previous one::

        {"type": "log", "offset": N, "next_offset": M, "text": "...lines...\\n"}
        {"type": "event", "offset": N, "next_offset": M, "event": {...}}

    ``log_offset``/``events_offset`` are byte offsets in job.log/events.jsonl.
    """

    job_dir: JobDir
    log_offset: int = 0
    events_offset: int = 0

    def read(self, final: bool = False) -> list[dict]:
        """New messages; with ``final`` (the job ended) partial last lines are included."""
        out = []
        data, nxt = read_from(self.job_dir.log_path, self.log_offset, whole_lines=not final)
        if data:
            out.append(
                {
                    "type": "log",
                    "offset": nxt - len(data),
                    "next_offset": nxt,
                    "text": data.decode("utf-8", errors="replace"),
                }
            )
        self.log_offset = nxt
        data, nxt = read_from(self.job_dir.events_path, self._events_line_start())
        pos = nxt - len(data)
        for line in data.splitlines(keepends=True):
            try:
                event = json.loads(line)
            except (ValueError, RecursionError):
                event = None
            if not (isinstance(event, dict) and isinstance(event.get("type"), str)):
                event = {"type": "unparsed", "text": line.decode("utf-8", errors="replace")[:1000]}
            out.append({"type": "event", "offset": pos, "next_offset": pos + len(line), "event": event})
            pos += len(line)
        self.events_offset = nxt
        return out

    def _events_line_start(self) -> int:
        """``events_offset``, moved to the start of the next line when it points inside
        one (a client's offset); stays put while that line is still being written."""
        offset = self.events_offset
        if offset == 0:
            return 0
        f = open_regular(self.job_dir.events_path)
        if f is None:
            return offset
        with f:
            size = f.seek(0, 2)
            if offset > size:
                return offset  # read_from restarts a rewritten file at 0
            f.seek(offset - 1)
            while True:
                chunk = f.read(MAX_CHUNK)
                cut = chunk.find(b"\n")
                if cut >= 0:
                    self.events_offset = f.tell() - len(chunk) + cut + 1
                    return self.events_offset
                if len(chunk) < MAX_CHUNK:
                    return size  # inside the last, unfinished line: nothing to send yet

    def finished(self) -> bool:
        """True when status.json holds a final state."""
        return self.job_dir.read_status().get("state") in FINAL_STATES
