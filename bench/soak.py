"""Soak: a real server process under minutes of mixed traffic, its memory and open files sampled.

`gigaam-api serve` (small official-format checkpoint, real ffmpeg and Silero, the result cache
on) gets, from several client threads at once: valid requests in every format (some repeated,
so the cache answers), streams read to the end, streams and uploads abandoned half-way, invalid
files and fields (random bytes now and then decode as MPEG audio: a 200 there is no error), jobs
API submissions followed to their result or cancelled, and /health and /metrics scrapes. RSS and
open file descriptors of the server are sampled every few seconds. After a warm-up, growth must
stay under the bounds below; a 5xx, a leftover temp file, an ffmpeg left running or a stop that
does not exit 0 fails the run too. Only loopback traffic.

    .venv/bin/python -m bench.soak [--duration-s 180] [--clients 4] [--seed 1]   (make soak)
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.common import REPO, SPEECH, report_header
from testkit.audio import synthesize_ru

RSS_GROWTH_BOUND_MB = 32.0
"""Allowed RSS growth under load: the median of the last quarter of the run over the median of
the second quarter (the first quarter is warm-up: allocator arenas, caches filling up)."""
FD_GROWTH_BOUND = 4
"""Allowed growth in open file descriptors: idle after the run against idle before it."""
SAMPLE_S = 5.0
WAIT_S = 120.0


@dataclass
class Sample:
    at_s: float
    rss_mb: float
    fds: int
    threads: int


@dataclass
class Results:
    outcomes: Counter[str] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, scenario: str, outcome: str | int) -> None:
        with self.lock:
            self.outcomes[f"{scenario} -> {outcome}"] += 1
            if isinstance(outcome, int) and outcome >= 500 and outcome != 503:
                self.server_errors.append(f"{scenario}: {outcome}")


def sample(pid: int, started_s: float) -> Sample:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return Sample(
        time.monotonic() - started_s,
        int(fields["VmRSS"].split()[0]) / 1024,
        len(os.listdir(f"/proc/{pid}/fd")),
        int(fields["Threads"]),
    )


def ffmpeg_children(pid: int) -> int:
    count = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        parent = int(text[text.rindex(")") + 2 :].split()[1])
        if parent == pid and text[text.index("(") + 1 : text.rindex(")")] in ("ffmpeg", "ffprobe"):
            count += 1
    return count


class Traffic:
    """One kind of request per method; each returns an outcome (a status, or what happened)."""

    def __init__(self, base_url: str, audio: list[Path], long_audio: Path, junk: bytes) -> None:
        self.url = base_url
        self.audio = audio
        self.long_audio = long_audio
        self.junk = junk

    def _files(self, path: Path) -> dict[str, tuple[str, bytes, str]]:
        return {"file": (path.name, path.read_bytes(), "audio/wav")}

    def sync(self, rng: random.Random) -> str | int:
        fmt = rng.choice(("json", "text", "srt", "vtt", "verbose_json"))
        data = {"model": "whisper-1", "response_format": fmt}
        if fmt == "verbose_json":
            data["timestamp_granularities[]"] = "word"
        path = rng.choice(self.audio)
        response = httpx.post(
            f"{self.url}/v1/audio/transcriptions",
            files=self._files(path),
            data=data,
            timeout=WAIT_S,
        )
        return response.status_code

    def stream(self, rng: random.Random) -> str | int:
        path = rng.choice([*self.audio, self.long_audio])
        with httpx.stream(
            "POST",
            f"{self.url}/v1/audio/transcriptions",
            files=self._files(path),
            data={"stream": "true"},
            timeout=WAIT_S,
        ) as response:
            lines = [line for line in response.iter_lines() if line.startswith("data: ")]
        if response.status_code == 200 and lines[-1:] != ["data: [DONE]"]:
            return f"stream ended by {lines[-1][:70] if lines else 'nothing'}"
        return response.status_code

    def stream_abandoned(self, rng: random.Random) -> str | int:
        threshold = rng.uniform(0.3, 0.7)  # a distinct job each time, not a shared one
        with httpx.stream(
            "POST",
            f"{self.url}/v1/audio/transcriptions",
            files=self._files(self.long_audio),
            data={
                "stream": "true",
                "chunking_strategy": f'{{"type":"server_vad","threshold":{threshold:.2f}}}',
            },
            timeout=WAIT_S,
        ) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    return "left after the first event"
        return response.status_code

    def upload_abandoned(self, rng: random.Random) -> str | int:
        request = httpx.Request(
            "POST", f"{self.url}/v1/audio/transcriptions", files=self._files(self.long_audio)
        )
        body = request.read()
        host, port = self.url.removeprefix("http://").split(":")
        head = (
            f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Type: {request.headers['content-type']}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(head + body[: rng.randrange(1, len(body))])
        return "left mid-upload"

    def invalid(self, rng: random.Random) -> str | int:
        if rng.random() < 0.5:
            files = {"file": ("x.mp3", self.junk[: rng.randrange(0, len(self.junk))], "audio/mpeg")}
            data = {"model": "whisper-1"}
        else:
            files = self._files(self.audio[0])
            data = {"model": "whisper-1", "response_format": rng.choice(("xml", "mp3", "json5"))}
        response = httpx.post(
            f"{self.url}/v1/audio/transcriptions", files=files, data=data, timeout=WAIT_S
        )
        return response.status_code

    def job(self, rng: random.Random) -> str | int:
        jobs = f"{self.url}/v1/audio/transcriptions/jobs"
        cancel = rng.random() < 0.2
        # A job to be cancelled gets options of its own: DELETE cancels a job whoever shares it
        # (by design), and the sync and stream requests of this soak must not be hit by that.
        data = {"chunking_strategy": f'{{"type":"server_vad","threshold":{rng.uniform(0.3, 0.7)}}}'}
        submitted = httpx.post(
            jobs,
            files=self._files(rng.choice(self.audio)),
            data=data if cancel else {},
            timeout=WAIT_S,
        )
        if submitted.status_code != 202:
            return submitted.status_code
        job_id = submitted.json()["id"]
        if cancel:
            return httpx.delete(f"{jobs}/{job_id}", timeout=WAIT_S).status_code
        deadline = time.monotonic() + WAIT_S
        while httpx.get(f"{jobs}/{job_id}", timeout=WAIT_S).json()["status"] in (
            "queued",
            "running",
        ):
            if time.monotonic() > deadline:
                return "job never ended"
            time.sleep(0.2)
        return httpx.get(f"{jobs}/{job_id}/result?response_format=srt", timeout=WAIT_S).status_code

    def probes(self, rng: random.Random) -> str | int:
        path = rng.choice(("/health", "/ready", "/metrics", "/v1/models"))
        return httpx.get(f"{self.url}{path}", timeout=WAIT_S).status_code


SCENARIOS: dict[str, tuple[float, Callable[[Traffic, random.Random], str | int]]] = {
    "sync": (4, Traffic.sync),
    "stream": (2, Traffic.stream),
    "stream abandoned": (1, Traffic.stream_abandoned),
    "upload abandoned": (1, Traffic.upload_abandoned),
    "invalid": (2, Traffic.invalid),
    "jobs api": (1.5, Traffic.job),
    "probes": (1, Traffic.probes),
}


def client(traffic: Traffic, seed: int, until_s: float, results: Results) -> None:
    rng = random.Random(seed)
    names = list(SCENARIOS)
    weights = [SCENARIOS[name][0] for name in names]
    while time.monotonic() < until_s:
        name = rng.choices(names, weights)[0]
        try:
            outcome = SCENARIOS[name][1](traffic, rng)
        except httpx.HTTPError as exc:
            outcome = f"client error {type(exc).__name__}"
        results.note(name, outcome)


def to_wav(
    source: Path, path: Path, before: tuple[str, ...] = (), after: tuple[str, ...] = ()
) -> Path:
    """`source` through ffmpeg as a 16 kHz mono wav (`before`/`after`: input/output options)."""
    quiet = ("-nostdin", "-loglevel", "error", "-y")
    mono_16k = ("-ar", "16000", "-ac", "1")
    subprocess.run(
        ["ffmpeg", *quiet, *before, "-i", str(source), *after, *mono_16k, str(path)], check=True
    )
    return path


def build_audio(directory: Path, rng: random.Random) -> tuple[list[Path], Path]:
    """Short files that differ (distinct jobs) and repeat (cache hits), and a ~1 min one."""
    speech = synthesize_ru(SPEECH, directory / "speech.wav")
    variants = [
        to_wav(
            speech,
            directory / f"short{index}.wav",
            before=("-t", "12"),
            after=("-af", f"apad=pad_dur={rng.uniform(0.1, 3.0):.2f}"),
        )
        for index in range(12)
    ]
    return variants, to_wav(speech, directory / "long.wav", before=("-stream_loop", "3"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=float, default=180.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    from testkit.checkpoints import write_checkpoint

    print(report_header())
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="gigaam-soak-") as tmp:
        directory = Path(tmp)
        checkpoint = write_checkpoint(directory / "v3_ctc.ckpt", "v3_ctc")
        audio, long_audio = build_audio(directory, rng)
        temp_dir = directory / "temp"
        temp_dir.mkdir()
        port = free_port()
        names = {"MODEL", "API_KEY", "CACHE_DIR", "TEMP_DIR", "HOST", "PORT", "MAX_QUEUE"}
        env = {key: value for key, value in os.environ.items() if key.upper() not in names}
        env.update(
            MODEL=str(checkpoint),
            HOST="127.0.0.1",
            PORT=str(port),
            CACHE_DIR=str(directory / "cache"),
            TEMP_DIR=str(temp_dir),
            TMPDIR=str(temp_dir),
            NUM_THREADS="1",
            MAX_QUEUE="16",
            LOG_LEVEL="WARNING",
        )
        server = subprocess.Popen(
            [str(Path(sys.executable).with_name("gigaam-api")), "serve"],
            env=env,
            cwd=directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + WAIT_S
            while True:
                try:
                    if httpx.get(f"{base_url}/ready", timeout=5).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    print("the server did not become ready")
                    return 1
                time.sleep(0.2)
            traffic = Traffic(base_url, audio, long_audio, rng.randbytes(20_000))
            results = Results()
            started_s = time.monotonic()
            samples = [sample(server.pid, started_s)]
            until_s = started_s + args.duration_s
            clients = [
                threading.Thread(
                    target=client, args=(traffic, args.seed * 100 + i, until_s, results)
                )
                for i in range(args.clients)
            ]
            for thread in clients:
                thread.start()
            while any(thread.is_alive() for thread in clients):
                time.sleep(min(SAMPLE_S, max(0.0, until_s - time.monotonic())) or 0.5)
                samples.append(sample(server.pid, started_s))
            for thread in clients:
                thread.join()
            while httpx.get(f"{base_url}/health", timeout=5).json()["queue"]["active"]:
                time.sleep(0.2)  # abandoned jobs finish their grace period or are cancelled
            samples.append(sample(server.pid, started_s))
            leftover_ffmpeg = ffmpeg_children(server.pid)
        finally:
            server.send_signal(signal.SIGTERM)
            exit_code = server.wait(WAIT_S)
        leftovers = sorted(path.name for path in temp_dir.glob("*gigaam*"))
    return report(samples, results, exit_code, leftovers, leftover_ffmpeg, args)


def report(
    samples: list[Sample],
    results: Results,
    exit_code: int,
    leftovers: list[str],
    leftover_ffmpeg: int,
    args: argparse.Namespace,
) -> int:
    loaded = samples[1:-1]  # the first and last samples are taken idle
    span_s = args.duration_s
    second_quarter = [s.rss_mb for s in loaded if span_s * 0.25 <= s.at_s < span_s * 0.5]
    last_quarter = [s.rss_mb for s in loaded if s.at_s >= span_s * 0.75]
    rss_growth = statistics.median(last_quarter) - statistics.median(second_quarter)
    idle_before, idle_after = samples[0], samples[-1]
    fd_growth = idle_after.fds - idle_before.fds
    requests = sum(results.outcomes.values())
    print(f"\n{requests} requests from {args.clients} clients in {args.duration_s:.0f} s:")
    for outcome, count in sorted(results.outcomes.items()):
        print(f"  {outcome:<48} {count:>6}")
    print("\n  at_s    rss_mb   fds  threads")
    for s in samples:
        print(f"  {s.at_s:6.1f}  {s.rss_mb:8.1f}  {s.fds:4d}  {s.threads:7d}")
    print(
        f"\nRSS idle before {idle_before.rss_mb:.1f} MB, under load (median) second quarter "
        f"{statistics.median(second_quarter):.1f} MB, last quarter "
        f"{statistics.median(last_quarter):.1f} MB, idle after {idle_after.rss_mb:.1f} MB"
    )
    checks = {
        f"RSS growth under load, last vs second quarter: {rss_growth:+.1f} MB "
        f"(bound {RSS_GROWTH_BOUND_MB:g})": rss_growth <= RSS_GROWTH_BOUND_MB,
        f"open fds idle after vs before: {idle_before.fds} -> {idle_after.fds} "
        f"(bound +{FD_GROWTH_BOUND})": fd_growth <= FD_GROWTH_BOUND,
        f"5xx answers (503 aside): {len(results.server_errors)}": not results.server_errors,
        f"ffmpeg/ffprobe children when idle: {leftover_ffmpeg}": leftover_ffmpeg == 0,
        f"SIGTERM exit code: {exit_code}": exit_code == 0,
        f"temp files left after exit: {leftovers or 'none'}": not leftovers,
    }
    for text, ok in checks.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {text}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    os.chdir(REPO)
    sys.exit(main())
