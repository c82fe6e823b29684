"""What a new user waits for: `make run`'s console on a fresh DATA_DIR, the first question typed at once.

Starts ``python -m bot run`` (no DISCORD_TOKEN: the local console on the bundled sample corpus) in a
pseudo-terminal with a fresh, empty DATA_DIR, waits for the console's ``> `` prompt, types the question
the moment the prompt appears (the worst case: a model loading in the background has had no head start),
and times the reply: from the Enter key to the next prompt. Then the same question again (warm), and
the next ones. Each run is a fresh process and a fresh DATA_DIR.

    python benchmarks/first_reply.py [--runs 3] [--question "/summary article:Japan mode:abstractive"]

Prints, per run: start-up until the prompt (embedding the sample corpus included), the first reply, a
second reply to the same question, and the summary's first line; then the median over the runs, with the
generator backend and CPU path the console's /about names.
"""

from __future__ import annotations

import argparse
import os
import pty
import re
import select
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROMPT = b"\n> "
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


class Console:
    """``python -m bot run`` on a pseudo-terminal (so it is interactive and prints its prompt)."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # the child: the bot, run from an empty folder (no .env of the checkout is read)
            os.chdir(data_dir)
            os.execvpe(sys.executable, [sys.executable, "-m", "bot", "run"], env)
        self.pid, self.fd, self.buf = pid, fd, b""

    def read_until(self, marker: bytes, timeout: float) -> bytes:
        end = time.perf_counter() + timeout
        while marker not in self.buf:
            left = end - time.perf_counter()
            if left <= 0:
                raise TimeoutError(f"no {marker!r} within {timeout:.0f}s; last output: {self.buf[-400:]!r}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise EOFError(f"the console exited; last output: {self.buf[-400:]!r}")
                self.buf += chunk.replace(b"\r\n", b"\n")
        head, _, self.buf = self.buf.partition(marker)
        return head

    def ask(self, line: str, timeout: float) -> tuple[float, str]:
        os.write(self.fd, line.encode() + b"\n")
        t = time.perf_counter()
        out = self.read_until(PROMPT, timeout)
        seconds = time.perf_counter() - t
        text = ANSI.sub(b"", out).decode("utf-8", "replace")
        lines = [x for x in text.splitlines() if x.strip() and x.strip() != line.strip()]
        return seconds, "\n".join(lines)

    def close(self) -> None:
        try:
            os.write(self.fd, b"/quit\n")
        except OSError:
            pass
        for _ in range(50):
            done, _ = os.waitpid(self.pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.1)
        else:
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
        os.close(self.fd)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--question", default="/summary article:Japan mode:abstractive")
    ap.add_argument("--then", action="append", default=None,
                    help="more questions after the first (default: two other abstractive summaries)")
    ap.add_argument("--timeout", type=float, default=600.0)
    args = ap.parse_args()
    then = args.then if args.then is not None else ["/summary article:Kazakhs mode:abstractive",
                                                    "/summary topic:coronavirus mode:abstractive"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "DATA_DIR", "CORPUS_PATH"))}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("LOG_LEVEL", "WARNING")
    firsts, starts, warms = [], [], []
    about = ""
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="precis-first-") as tmp:
            env["DATA_DIR"] = str(Path(tmp) / "data")
            t = time.perf_counter()
            con = Console(Path(tmp), env)
            try:
                con.read_until(PROMPT, args.timeout)
                start = time.perf_counter() - t
                first, text = con.ask(args.question, args.timeout)
                again, _ = con.ask(args.question, args.timeout)
                rest = [con.ask(q, args.timeout)[0] for q in then]
                if not about:
                    _, about = con.ask("/about", args.timeout)
            finally:
                con.close()
        starts.append(start)
        firsts.append(first)
        warms.extend([again, *rest])
        head = next((x for x in text.splitlines() if x.strip() and not x.startswith("Summary (")), "")
        print(f"run {run + 1}: start-up to prompt {start:.1f}s, first reply {first:.2f}s, same again "
              f"{again:.2f}s, next {' '.join(f'{x:.2f}s' for x in rest)}\n  first line: {head[:160]}",
              flush=True)
    print(f"\n{args.question!r} typed as the console's prompt appears, fresh DATA_DIR, {args.runs} run(s), "
          f"{os.cpu_count()} CPUs:")
    print(f"  first reply median {statistics.median(firsts):.2f}s (max {max(firsts):.2f}s); later replies "
          f"median {statistics.median(warms):.2f}s (max {max(warms):.2f}s); start-up to prompt median "
          f"{statistics.median(starts):.1f}s")
    for line in about.splitlines():
        if re.search(r"(?i)summary model|generator|llama|transformers|cpu|embed", line):
            print("  /about: " + line.strip()[:200])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
