#!/usr/bin/env python3
"""larder-demo refuses bad input clearly and cleans up after Ctrl-C.

Each case must end with a non-zero exit status and a message naming the
problem, before any long work: a --db path that cannot be opened, a folder,
a file that is not SQLite, another application's database, a journal folder
that cannot be written, bad options. Ctrl-C (SIGINT) exits with 130 and
leaves no temporary database behind; a --db database is kept.

usage: bad_input.py path/to/larder-demo
"""
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def run(demo, args, tmp, **kwargs):
    env = dict(os.environ, TMPDIR=tmp)
    return subprocess.run([demo] + args, capture_output=True, text=True, timeout=120, env=env,
                          **kwargs)


def refused(demo, tmp, what, args, message, status=2, **kwargs):
    r = run(demo, args, tmp, **kwargs)
    check(r.returncode == status and message in r.stderr,
          f"{what}: exit {r.returncode} (want {status}), says {r.stderr.strip()!r}")
    return r


def leftovers(tmp):
    return [n for n in os.listdir(tmp) if n.startswith("larder-demo-")]


def interrupt(demo, args, tmp, after_line):
    """Starts the demo, sends SIGINT once a line starting with after_line appears."""
    env = dict(os.environ, TMPDIR=tmp)
    p = subprocess.Popen([demo] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env)
    seen = []
    for line in p.stdout:
        seen.append(line)
        if line.startswith(after_line):
            time.sleep(0.2)
            p.send_signal(signal.SIGINT)
            break
    out, err = p.communicate(timeout=120)
    return p.returncode, "".join(seen) + out, err


def main():
    demo = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory(prefix="larder-demo-bad-") as tmp:
        os.chmod(tmp, 0o755)
        refused(demo, tmp, "a --db in a folder that does not exist",
                ["--quick", "--db", os.path.join(tmp, "no-such-folder", "shop.db")],
                "cannot open database")
        refused(demo, tmp, "a --db that is a folder", ["--quick", "--db", tmp], "is a directory")

        text = os.path.join(tmp, "notes.txt")
        with open(text, "w") as f:
            f.write("These are my notes, not a database.\n" * 200)
        before = open(text).read()
        refused(demo, tmp, "a --db that is not an SQLite file", ["--quick", "--db", text],
                "is not an SQLite database")
        check(open(text).read() == before and not os.path.exists(text + "-wal"),
              "the non-SQLite file is left as it was")

        other = os.path.join(tmp, "other.db")
        with sqlite3.connect(other) as c:
            c.execute("CREATE TABLE invoices(id INTEGER PRIMARY KEY)")
        refused(demo, tmp, "a --db of another application", ["--quick", "--db", other],
                "other tables (invoices)")

        # A journal folder that cannot be written. Permission bits do not stop
        # root, so as root the demo runs as nobody.
        readonly = os.path.join(tmp, "readonly-journal")
        os.mkdir(readonly, 0o555)
        os.chmod(readonly, 0o555)
        user = {}
        runner, env_tmp = demo, tmp
        if os.geteuid() == 0:
            user = {"user": 65534, "group": 65534, "extra_groups": []}
            scratch = os.path.join(tmp, "scratch")
            os.mkdir(scratch)
            os.chmod(scratch, 0o777)
            env_tmp = scratch
            # A copy nobody can run, wherever the build tree is.
            runner = os.path.join(tmp, "larder-demo")
            shutil.copy(demo, runner)
            os.chmod(runner, 0o755)
        refused(runner, env_tmp, "a read-only journal folder", ["--quick", "--journal", readonly],
                "cannot write the journal directory", **user)
        refused(demo, tmp, "a journal path that is a file", ["--quick", "--journal", text],
                "is not a directory")

        refused(demo, tmp, "an unknown option", ["--quick", "--frobnicate"], "unknown option")
        refused(demo, tmp, "a bad number", ["--clients", "many"], "--clients wants a number")
        refused(demo, tmp, "a missing value", ["--db"], "--db wants a value")
        check(not leftovers(tmp), f"no temporary folder left by refused runs ({leftovers(tmp)})")

        # Ctrl-C while the database is being filled, and in the middle of a phase.
        status, out, err = interrupt(demo, ["--users", "200000", "--orders", "20000000"], tmp,
                                     "[0/5]")
        check(status == 130 and "interrupted" in err,
              f"Ctrl-C while filling the database: exit {status}, says {err.strip()!r}")
        check(not leftovers(tmp), f"no temporary database left ({leftovers(tmp)})")
        status, out, err = interrupt(demo, ["--quick"], tmp, "[2/5]")
        check(status == 130 and "interrupted" in err,
              f"Ctrl-C in phase 2: exit {status}, says {err.strip()!r}")
        check(not leftovers(tmp), f"no temporary database left ({leftovers(tmp)})")
        status, out, err = interrupt(demo, ["--quick"], tmp, "[4/5]")
        check(status == 130, f"Ctrl-C while the crash child runs: exit {status}")
        check(not leftovers(tmp), f"no temporary database left ({leftovers(tmp)})")

        # With --db, the database is the user's: kept, and never half-filled
        # (the filling is one transaction).
        kept = os.path.join(tmp, "kept.db")
        status, out, err = interrupt(demo, ["--db", kept, "--users", "200000",
                                            "--orders", "20000000"], tmp, "[0/5]")
        check(status == 130 and "is kept" in err, f"Ctrl-C with --db: exit {status}, {err!r}")
        with sqlite3.connect(kept) as c:
            tables = [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        check(tables == [], f"the interrupted --db holds no half-filled tables ({tables})")

    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
