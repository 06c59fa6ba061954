"""Five-person encrypted group call in Chromium: browser CPU with and without the frame crypto,
per-frame encrypt/decrypt time in the worker, consent → first remote video frame.

    .venv/bin/python signaling/bench/bench_e2ee_call.py [--window 30] [--settle 10] [--rounds 2]

A script that prints numbers, run through pytest so it stands up the same real parts as
``signaling/tests/test_browser_e2ee.py`` (its fixtures: the local control plane, the real
operator, signaling as a process, the session's SFU + coturn as local processes); it is not in
``testpaths``, so ``make test`` never runs it. Five separate headless Debian Chromium processes
(one page each, fake devices, the harness's small camera clip) join one group session one after
another, once per variant:

- ``encrypted``: the product as served (AES-GCM in the frame worker);
- ``copy``: a bench-only stand-in, since the product has no unencrypted mode: frame.js served
  (Playwright ``context.route``) with AES-GCM encrypt/decrypt replaced by a plain copy in the
  same byte layout (clear prefix, payload, 16 zero "tag" bytes, IV, trailer): the transform
  plumbing stays, only the crypto is gone;
- ``none``: bench-only too, session.js served with ``attach`` doing nothing: no frame transform.

In ``encrypted`` and ``copy`` frame.js is served with both functions wrapped in
``performance.now()`` timers (same wrapper, so the CPU comparison stays fair); the worker keeps
the samples, read with Playwright's worker ``evaluate``. Per variant: consent → first remote video
frame decoded (``getStats`` polled every 50 ms in the page) for pages 1-4 (page 0 joins alone),
then, once every page decodes four videos, ``--settle`` s, then the CPU of each Chromium process
tree (utime + stime of every process under it, ``/proc``) over ``--window`` s, with the frames
each page decoded in that window and the load average. ``--rounds`` more encrypted calls add
join samples. Prints a summary and one JSON line (``--json`` also writes it to a file).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
# The browser tests' harness and conftest, and what that conftest puts on the path.
sys.path[:0] = [str(REPO / p) for p in ("signaling/tests", "operator/tests", "media-pod")]

import support  # noqa: E402  # operator/tests/support.py (put on the path by conftest)
from browser import (  # noqa: E402
    chromium,
    inbound_stats,
    media_flowing,
    new_context,
    small_camera,
    wait_for_state,
)
from lightkube import Client  # noqa: E402
from local_media_pod import local_media_pod  # noqa: E402
from playwright.async_api import Browser, BrowserContext, Page, Route  # noqa: E402
from sprechzimmer.contract import SecretKey  # noqa: E402
from test_browser_call import invitation  # noqa: E402

VARIANTS = ("encrypted", "copy", "none")
PAGES = 5
TICK = os.sysconf("SC_CLK_TCK")

# Appended to frame.js (whose two exported functions are renamed to aes*): the plain copy of
# the ``copy`` variant, in the layout of docs/e2ee.md with a zero tag and IV.
COPY_FUNCTIONS = """
async function copyEncryptFrame(key, keyIndex, kind, data) {
  const out = new Uint8Array(data.length + OVERHEAD);
  out.set(data, 0);
  out[out.length - 2] = IV_LENGTH;
  out[out.length - 1] = keyIndex;
  return out;
}
async function copyDecryptFrame(key, parsed) {
  const out = new Uint8Array(parsed.header.length + parsed.sealed.length - TAG_LENGTH);
  out.set(parsed.header, 0);
  out.set(parsed.sealed.subarray(0, parsed.sealed.length - TAG_LENGTH), parsed.header.length);
  return out;
}
"""
# The exported functions, timed: flat samples [op (0 encrypt, 1 decrypt), audio?, ms, bytes].
TIMED_EXPORTS = """
const benchTiming = (globalThis.__benchFrameTiming ??= { samples: [] });
export async function encryptFrame(key, keyIndex, kind, data, iv) {
  const start = performance.now();
  const out = await %(encrypt)s(key, keyIndex, kind, data, iv);
  benchTiming.samples.push(0, kind === "audio" ? 1 : 0, performance.now() - start, data.length);
  return out;
}
export async function decryptFrame(key, parsed) {
  const start = performance.now();
  const out = await %(decrypt)s(key, parsed);
  const audio = parsed.header.length === 1 ? 1 : 0; // Opus keeps 1 byte clear, VP8 3 or 10
  benchTiming.samples.push(1, audio, performance.now() - start, out.length);
  return out;
}
"""
NO_TRANSFORM = "    return; // bench variant `none`: no frame transform\n"
ATTACH = "  attach(endpoint, options) {\n"

# Click consent, then poll getStats every 50 ms: ms until the first remote video decodes a frame
# and until ``expected`` remote videos do.
JOIN_PROBE = """
async (expected) => {
  const start = performance.now();
  document.querySelector("button[name=consent]").click();
  let first = null;
  for (;;) {
    let decoding = 0;
    for (const pc of window.__testPeerConnections) {
      if (pc.connectionState === "closed") continue;
      (await pc.getStats()).forEach((s) => {
        if (s.type === "inbound-rtp" && s.kind === "video" && (s.framesDecoded ?? 0) > 0) {
          decoding += 1;
        }
      });
    }
    const elapsed = performance.now() - start;
    if (decoding > 0 && first === null) first = elapsed;
    if (decoding >= expected) return { first, all: elapsed };
    if (elapsed > 120000) return { first, all: null };
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
"""


# --------------------------------------------------------------------------- pure helpers


def frame_source(real: str, variant: str) -> str:
    """frame.js for ``variant`` (encrypted or copy): the real module with timed exports."""
    renamed = real.replace(
        "export async function encryptFrame(", "async function aesEncryptFrame("
    ).replace("export async function decryptFrame(", "async function aesDecryptFrame(")
    assert renamed.count("async function aes") == 2, "frame.js changed: update the bench"
    if variant == "copy":
        return (
            renamed
            + COPY_FUNCTIONS
            + TIMED_EXPORTS
            % {
                "encrypt": "copyEncryptFrame",
                "decrypt": "copyDecryptFrame",
            }
        )
    return renamed + TIMED_EXPORTS % {"encrypt": "aesEncryptFrame", "decrypt": "aesDecryptFrame"}


def session_source(real: str) -> str:
    """session.js of the ``none`` variant: ``attach`` returns at once."""
    assert real.count(ATTACH) == 1, "session.js changed: update the bench"
    return real.replace(ATTACH, ATTACH + NO_TRANSFORM)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100); None without values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def timing_summary(samples: list[float]) -> dict[str, dict[str, float | int | None]]:
    """p50/p99 ms and mean bytes per operation and kind, from the worker's flat samples."""
    groups: dict[str, tuple[list[float], list[float]]] = {}
    for n in range(0, len(samples) - 3, 4):
        op, audio, ms, size = samples[n : n + 4]
        ms_list, sizes = groups.setdefault(
            f"{('encrypt', 'decrypt')[int(op)]} {('video', 'audio')[int(audio)]}", ([], [])
        )
        ms_list.append(ms)
        sizes.append(size)
    return {
        name: {
            "frames": len(ms_list),
            "p50_ms": percentile(ms_list, 50),
            "p99_ms": percentile(ms_list, 99),
            "mean_bytes": round(sum(sizes) / len(sizes)),
        }
        for name, (ms_list, sizes) in sorted(groups.items())
    }


# --------------------------------------------------------------------------- /proc


Table = dict[int, tuple[str, int, float]]


def _stat(pid: int) -> tuple[str, int, float]:
    """comm, parent pid and utime + stime (s) of ``pid``."""
    text = Path(f"/proc/{pid}/stat").read_text()
    comm = text[text.index("(") + 1 : text.rindex(")")]
    fields = text.rsplit(")", 1)[1].split()
    return comm, int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK


def processes() -> Table:
    """Every live process: pid → (comm, parent pid, CPU seconds)."""
    found: Table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found[int(entry.name)] = _stat(int(entry.name))
            except (FileNotFoundError, ProcessLookupError, ValueError):
                continue  # gone meanwhile
    return found


def descendants(table: Table, root: int) -> set[int]:
    """``root`` and every process under it."""
    tree = {root}
    while True:
        grown = tree | {pid for pid, (_, parent, _) in table.items() if parent in tree}
        if grown == tree:
            return tree
        tree = grown


def chromium_roots(table: Table) -> set[int]:
    """Browser processes started by this process (a chromium whose parent is not one)."""

    def chromium(pid: int) -> bool:
        return table.get(pid, ("", 0, 0.0))[0].startswith("chromium")

    return {
        pid
        for pid in descendants(table, os.getpid())
        if chromium(pid) and not chromium(table[pid][1])
    }


def tree_cpu(table: Table, root: int) -> dict[int, float]:
    """CPU seconds of every process in ``root``'s tree."""
    return {pid: table[pid][2] for pid in descendants(table, root)}


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# --------------------------------------------------------------------------- the call


async def routed_context(browser: Browser, variant: str) -> BrowserContext:
    """A page's context, with frame.js or session.js replaced as ``variant`` needs."""
    context = await new_context(browser, record_peer_connections=True)

    async def serve(route: Route) -> None:
        response = await route.fetch()
        real = await response.text()
        body = session_source(real) if variant == "none" else frame_source(real, variant)
        await route.fulfill(response=response, body=body)

    await context.route("**/e2ee/session.js" if variant == "none" else "**/e2ee/frame.js", serve)
    return context


async def join_call(browsers: list[Browser], url: str, links: list[str], variant: str) -> Any:
    """Five pages join one after another; ms consent → first / all remote videos decoding."""
    pages: list[Page] = []
    joins: list[dict[str, float | None]] = []
    for n, (browser, link) in enumerate(zip(browsers, links, strict=True)):
        page = await (await routed_context(browser, variant)).new_page()
        await page.goto(f"{url}/j#{link}")
        await wait_for_state(page, "consent")
        if n == 0:
            await page.click("button[name=consent]")  # alone: nothing to receive yet
            await wait_for_state(page, "waiting", 60)
        else:
            joins.append(await page.evaluate(JOIN_PROBE, n))
            await wait_for_state(page, "connected", 60)
        pages.append(page)
    for page in pages:
        await media_flowing(page, streams=PAGES - 1, within=90)
    return pages, joins


async def leave(pages: list[Page]) -> None:
    for page in pages:
        await page.click("#leave")
        await wait_for_state(page, "ended")
        await page.context.close()


async def frame_timing(page: Page, reset: bool) -> list[float]:
    """The worker's timing samples (and start afresh with ``reset``)."""
    workers = [w for w in page.workers if w.url.endswith("/e2ee/worker.js")]
    assert len(workers) == 1, f"frame worker not found: {[w.url for w in page.workers]}"
    samples: list[float] = await workers[0].evaluate(
        "(reset) => { const t = globalThis.__benchFrameTiming;"
        " const s = t.samples; if (reset) t.samples = []; return s; }",
        reset,
    )
    return samples


async def measure(pages: list[Page], roots: list[int], window: float, timed: bool) -> Any:
    """CPU % (of one core) of each Chromium tree and frames decoded per page over ``window``."""
    if timed:
        for page in pages:
            await frame_timing(page, reset=True)
    decoded = [(await inbound_stats(page))["framesDecoded"] for page in pages]
    load_before, before, start = load_average(), processes(), time.monotonic()
    await asyncio.sleep(window)  # the measuring window itself, not a synchronisation
    after, elapsed = processes(), time.monotonic() - start
    cpu = []
    for root in roots:
        first, last = tree_cpu(before, root), tree_cpu(after, root)
        used = sum(seconds - first.get(pid, 0.0) for pid, seconds in last.items())
        cpu.append(round(100 * used / elapsed, 1))
    fps = [
        round(((await inbound_stats(page))["framesDecoded"] - d) / elapsed, 1)
        for page, d in zip(pages, decoded, strict=True)
    ]
    samples = [s for page in pages for s in await frame_timing(page, False)] if timed else []
    return {
        "cpu_percent": cpu,
        "cpu_mean": round(sum(cpu) / len(cpu), 1),
        "decoded_fps": fps,
        "load_before": load_before,
        "load_after": load_average(),
        "frame_timing": timing_summary(samples) if timed else None,
    }


def report(results: dict[str, Any]) -> None:
    """Human-readable lines, then the JSON."""
    for variant, result in results["variants"].items():
        print(
            f"{variant:9} CPU % per browser {result['cpu_percent']} mean {result['cpu_mean']}"
            f"  decoded fps {result['decoded_fps']}  load {result['load_before']}"
            f" → {result['load_after']}"
        )
        for name, t in (result["frame_timing"] or {}).items():
            print(f"          {name}: {t}")
    base = results["variants"].get("copy")
    for variant, result in results["variants"].items():
        if base and variant != "copy":
            extra = 100 * (result["cpu_mean"] / base["cpu_mean"] - 1)
            print(f"{variant} vs copy: {extra:+.1f} % browser CPU")
    firsts = [j["first"] for j in results["joins"] if j["first"] is not None]
    alls = [j["all"] for j in results["joins"] if j["all"] is not None]
    print(
        f"joins {len(results['joins'])}: first remote frame p50 {percentile(firsts, 50)} ms"
        f" p99 {percentile(firsts, 99)} ms; all remote videos p50 {percentile(alls, 50)} ms"
        f" p99 {percentile(alls, 99)} ms"
    )
    print(json.dumps(results))


# --------------------------------------------------------------------------- the bench


@pytest.mark.bench
async def test_bench_e2ee_call(
    operator: Any,
    media_node: str,
    start_signaling: Any,
    namespace: str,
    kube: Client,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    bench_options: argparse.Namespace,
) -> None:
    options = bench_options
    support.create_session(kube, namespace, "bench", clients=PAGES - 1)
    camera = small_camera(tmp_path, *options.camera)
    async with (
        local_media_pod(kube, namespace, "bench", monkeypatch, tmp_path) as pod,
        AsyncExitStack() as stack,
    ):
        browsers, roots = [], []
        for _ in range(PAGES):
            known = chromium_roots(processes())
            browsers.append(await stack.enter_async_context(chromium(camera=camera)))
            (root,) = chromium_roots(processes()) - known
            roots.append(root)
        signaling = start_signaling(media_override=pod.override)
        invite = invitation(kube, namespace, "bench", signaling)
        links = [invite[SecretKey.HOST_LINK_TOKEN.value]]
        links += [invite[SecretKey.CLIENT_LINK_TOKEN.value]] * (PAGES - 1)
        results: dict[str, Any] = {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "options": vars(options),
            "variants": {},
            "joins": [],
            "joins_by_variant": {},
        }
        for variant in options.variants:
            pages, joins = await join_call(browsers, signaling.url, links, variant)
            results["joins_by_variant"][variant] = joins
            if variant == "encrypted":
                results["joins"] += joins
            await asyncio.sleep(options.settle)  # steady state after the joins' key frames
            results["variants"][variant] = await measure(
                pages, roots, options.window, timed=variant != "none"
            )
            await leave(pages)
            print(variant, results["variants"][variant], flush=True)
        for _ in range(options.rounds):
            pages, joins = await join_call(browsers, signaling.url, links, "encrypted")
            results["joins"] += joins
            await leave(pages)
    report(results)
    if options.json:
        options.json.write_text(json.dumps(results, indent=2))


class BenchOptions:
    """A pytest plugin giving the test this script's command line."""

    def __init__(self, options: argparse.Namespace) -> None:
        self.options = options

    @pytest.fixture
    def bench_options(self) -> argparse.Namespace:
        return self.options

    def pytest_configure(self, config: pytest.Config) -> None:
        config.addinivalue_line("markers", "bench: a benchmark (prints numbers), not a test")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--window", type=float, default=30, help="CPU window, s")
    parser.add_argument("--settle", type=float, default=10, help="wait before the window, s")
    parser.add_argument("--rounds", type=int, default=2, help="extra encrypted join rounds")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--camera", type=int, nargs=2, default=[320, 240], metavar=("W", "H"))
    parser.add_argument("--json", type=Path, help="also write the results here")
    options = parser.parse_args()
    args = [__file__, "-s", "-q", "-p", "conftest", "-p", "no:cacheprovider", "-o", "timeout=1800"]
    return int(pytest.main(args, plugins=[BenchOptions(options)]))


if __name__ == "__main__":
    sys.exit(main())
