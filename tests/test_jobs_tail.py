"""Log tailing by byte offsets: whole lines only while a job runs, resumable, tqdm's \\r."""

from __future__ import annotations

from jupyter_cvat_train.jobs.runtime import JobDir
from jupyter_cvat_train.jobs.tail import JobFollower, read_from


def test_read_from_returns_whole_lines_and_the_next_offset(tmp_path):
    log = tmp_path / "job.log"
    assert read_from(log, 0) == (b"", 0)  # not written yet
    log.write_bytes(b"one\ntw")
    assert read_from(log, 0) == (b"one\n", 4)
    assert read_from(log, 4) == (b"", 4)  # the partial line waits for its end
    assert read_from(log, 4, whole_lines=False) == (b"tw", 6)  # unless the job ended
    with open(log, "ab") as f:
        f.write(b"o\n 10%|#   \r 20%|##  \r 2")
    assert read_from(log, 4) == (b"two\n 10%|#   \r 20%|##  \r", 28)  # progress bar updates arrive
    log.write_bytes(b"new\n")  # truncated and rewritten: restart from 0
    assert read_from(log, 28) == (b"new\n", 4)
    log.write_bytes(b"x" * 100)
    assert read_from(log, 0, max_bytes=40) == (b"x" * 40, 40)  # a very long line comes in pieces


def test_follower_reads_log_and_events_from_offsets(tmp_path):
    jd = JobDir(tmp_path / "job").create({"kind": "validate"})
    jd.log_path.write_text("a\nb\n")
    jd.append_event({"type": "progress", "done": 1})
    f = JobFollower(jd)
    msgs = f.read()
    assert msgs[0] == {"type": "log", "offset": 0, "next_offset": 4, "text": "a\nb\n"}
    assert msgs[1]["event"] == {"type": "progress", "done": 1} and msgs[1]["offset"] == 0
    jd.append_event({"type": "state", "state": "succeeded"})
    (again,) = JobFollower(jd, log_offset=4, events_offset=msgs[1]["next_offset"]).read()
    assert again["event"]["state"] == "succeeded" and f.read()[0]["event"] == again["event"]
    assert not f.finished()
    jd.update_status(state="succeeded")
    assert f.finished()


def test_messages_are_labelled_with_the_offset_really_read_from(tmp_path):
    jd = JobDir(tmp_path / "job").create({"kind": "validate"})
    jd.log_path.write_bytes(b"first line\nsecond\n")
    for n in range(3):
        jd.append_event({"type": "progress", "done": n})
    events = jd.events_path.read_bytes()
    starts = [0] + [i + 1 for i, b in enumerate(events) if b == ord("\n")][:-1]

    # beyond the end of both files (they were rewritten since): everything again, labelled from 0
    (log, *evs) = JobFollower(jd, log_offset=10**9, events_offset=10**9).read()
    assert (log["offset"], log["next_offset"], log["text"]) == (0, 18, "first line\nsecond\n")
    assert [m["offset"] for m in evs] == starts and [m["event"]["done"] for m in evs] == [0, 1, 2]

    # in the middle of a line: the log is sent from there (its label says so); events skip to
    # the next whole line, so each event message is one parsed JSON line with its own offsets
    (log, *evs) = JobFollower(jd, log_offset=3, events_offset=starts[1] + 5).read()
    assert (log["offset"], log["text"]) == (3, "st line\nsecond\n")
    assert [(m["offset"], m["event"]["done"]) for m in evs] == [(starts[2], 2)]
    assert all(m["next_offset"] == m["offset"] + len(events[m["offset"] :].split(b"\n")[0]) + 1 for m in evs)

    # inside an unfinished last line: nothing until it ends, then only the lines after it
    with open(jd.events_path, "ab") as f:
        f.write(b'{"type": "progress", "do')
    f2 = JobFollower(jd, events_offset=len(events) + 3)
    assert f2.read() == [{"type": "log", "offset": 0, "next_offset": 18, "text": "first line\nsecond\n"}]
    with open(jd.events_path, "ab") as f:
        f.write(b'ne": 3}\n')
    assert f2.read() == []
    jd.append_event({"type": "progress", "done": 4})
    (ev,) = f2.read()
    assert ev["event"]["done"] == 4 and ev["offset"] == len(events) + len(b'{"type": "progress", "done": 3}\n')


def test_planted_links_fifos_and_odd_event_lines_are_not_served(tmp_path):
    """job.log and events.jsonl can be planted through the Contents API: a link to an
    outside file or a FIFO reads as empty (never blocks), an odd events line is
    ``unparsed``."""
    import os

    secret = tmp_path / "secret.txt"
    secret.write_text("outside\n")
    jd = JobDir(tmp_path / "job").create({"kind": "validate"})
    jd.log_path.symlink_to(secret)
    os.mkfifo(jd.events_path)
    assert read_from(jd.log_path, 0) == (b"", 0)
    assert JobFollower(jd).read() == []
    jd.log_path.unlink()
    jd.events_path.unlink()
    jd.events_path.write_text('5\n[1]\n{"no": "type"}\n{"type": 7}\nnot json\n{"type": "progress"}\n')
    events = [m["event"] for m in JobFollower(jd).read()]
    assert [e["type"] for e in events] == ["unparsed"] * 5 + ["progress"]
    assert events[0]["text"] == "5\n"
