"""Five-person encrypted group call in Chromium: browser CPU with and without the frame crypto,
encrypt/decrypt time per frame, consent → first remote video frame (docs/benchmarks.md).

    .venv/bin/python signaling/bench/bench_e2ee_call.py [--window 30] [--settle 10] [--rounds 2]

Runs through pytest for the real parts of test_browser_e2ee.py (control plane, operator,
signaling, SFU + coturn as local processes); not in ``testpaths``, never in ``make test``.
Variants: ``encrypted`` (the product) and two bench-only stand-ins, ``copy`` (AES-GCM replaced by
a plain copy in the same byte layout) and ``none`` (no frame transform attached).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
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
from proctree import descendants, load_average, processes, tree_roots  # noqa: E402
from sprechzimmer.contract import SecretKey  # noqa: E402
from test_browser_call import invitation  # noqa: E402

VARIANTS = ("encrypted", "copy", "none")
PAGES = 5

# Appended to frame.js (whose two exported functions are renamed to aes*): the plain copy of
# the ``copy`` variant, in the layout of docs/e2ee.md with a zero tag and IV.
COPY_FUNCTIONS = """
async function copyEncryptFrame(key, keyIndex, kind, data) {
  const out = new Uint8Array(data.length + OVERHEAD);
  out.set(data, 0);
  out.set([IV_LENGTH, keyIndex], out.length - 2);
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
  const out = await %(inner)sEncryptFrame(key, keyIndex, kind, data, iv);
  benchTiming.samples.push(0, kind === "audio" ? 1 : 0, performance.now() - start, data.length);
  return out;
}
export async function decryptFrame(key, parsed) {
  const start = performance.now();
  const out = await %(inner)sDecryptFrame(key, parsed);
  const audio = parsed.header.length === 1 ? 1 : 0; // Opus keeps 1 byte clear, VP8 3 or 10
  benchTiming.samples.push(1, audio, performance.now() - start, out.length);
  return out;
}
"""
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
        if (s.type === "inbound-rtp" && s.kind === "video" && s.framesDecoded > 0) decoding += 1;
      });
    }
    const elapsed = performance.now() - start;
    if (decoding > 0 && first === null) first = elapsed;
    if (decoding >= expected) return { first, all: elapsed };
    if (elapsed > 60000) return { first, all: null };
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
"""


def frame_source(real: str, variant: str) -> str:
    """frame.js for ``variant`` (encrypted or copy): the real module with timed exports."""
    renamed = real.replace(
        "export async function encryptFrame(", "async function aesEncryptFrame("
    ).replace("export async function decryptFrame(", "async function aesDecryptFrame(")
    assert renamed.count("async function aes") == 2, "frame.js changed: update the bench"
    if variant == "copy":
        return renamed + COPY_FUNCTIONS + TIMED_EXPORTS % {"inner": "copy"}
    return renamed + TIMED_EXPORTS % {"inner": "aes"}


def session_source(real: str) -> str:
    """session.js of the ``none`` variant: ``attach`` returns at once."""
    assert real.count(ATTACH) == 1, "session.js changed: update the bench"
    return real.replace(ATTACH, ATTACH + "    return; // bench variant `none`: no transform\n")


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100); None without values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def timing_summary(samples: list[float]) -> dict[str, dict[str, float | int | None]]:
    """p50/p99 ms and mean bytes per operation and kind, from the worker's flat samples."""
    groups: dict[str, list[tuple[float, float]]] = {}
    for n in range(0, len(samples) - 3, 4):
        op, audio, ms, size = samples[n : n + 4]
        name = f"{('encrypt', 'decrypt')[int(op)]} {('video', 'audio')[int(audio)]}"
        groups.setdefault(name, []).append((ms, size))
    return {
        name: {
            "frames": len(group),
            "p50_ms": percentile([ms for ms, _ in group], 50),
            "p99_ms": percentile([ms for ms, _ in group], 99),
            "mean_bytes": round(sum(size for _, size in group) / len(group)),
        }
        for name, group in sorted(groups.items())
    }


def noisy_camera(directory: Path, width: int, height: int) -> Path:
    """A 2 s looping Y4M clip (15 fps): grey with noise in the top quarter. The tests' bars make
    ~140-byte VP8 frames, full-frame noise ~16 KB ones at a few fps on a busy machine; this
    gives frames of a few KB, like a webcam picture at this size."""
    path = directory / f"noise-{width}x{height}.y4m"
    noise = random.Random(10)  # noqa: S311  # a camera picture, not a secret: same every run
    grey = bytes([128]) * (width * height * 3 // 4 + width * height // 2)
    with path.open("wb") as clip:
        clip.write(f"YUV4MPEG2 W{width} H{height} F15:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(30):
            clip.write(b"FRAME\n" + noise.randbytes(width * height // 4) + grey)
    return path


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
    try:
        for n, (browser, link) in enumerate(zip(browsers, links, strict=True)):
            pages.append(await (await routed_context(browser, variant)).new_page())
            await pages[n].goto(f"{url}/j#{link}")
            await wait_for_state(pages[n], "consent")
            if n == 0:
                await pages[n].click("button[name=consent]")  # alone: nothing to receive yet
                await wait_for_state(pages[n], "waiting", 60)
                continue
            joins.append(await pages[n].evaluate(JOIN_PROBE, n))
            assert joins[-1]["all"] is not None, f"page {n}: not {n} remote videos in 60 s"
            await wait_for_state(pages[n], "connected", 60)
        for page in pages:
            await media_flowing(page, streams=PAGES - 1, within=90)
    except AssertionError:
        for page in pages:
            await page.context.close()
        raise
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
    decoded, counted = (
        [(await inbound_stats(page))["framesDecoded"] for page in pages],
        time.monotonic(),
    )
    for page in pages if timed else []:
        await frame_timing(page, reset=True)
    load_before, before, start = load_average(), processes(), time.monotonic()
    await asyncio.sleep(window)  # the measuring window itself, not a synchronisation
    after, elapsed = processes(), time.monotonic() - start
    samples = [s for page in pages for s in await frame_timing(page, False)] if timed else []
    cpu = []
    for root in roots:
        # Over the processes alive at the end (one that ended in the window is left out).
        used = sum(after[p][2] - before.get(p, ("", 0, 0.0))[2] for p in descendants(after, root))
        cpu.append(round(100 * used / elapsed, 1))
    fps = [
        # Over the time between the counts (the window plus reading the samples), not the window.
        round(((await inbound_stats(page))["framesDecoded"] - d) / (time.monotonic() - counted), 1)
        for page, d in zip(pages, decoded, strict=True)
    ]
    return {
        "cpu_percent": cpu,
        "cpu_mean": round(sum(cpu) / len(cpu), 1),
        "decoded_fps": fps,
        "load_before": load_before,
        "load_after": load_average(),
        "frame_timing": timing_summary(samples) if timed else None,
    }


def summary(results: dict[str, Any]) -> dict[str, Any]:
    """Mean browser CPU per variant and what one adds over another; join times (ms)."""
    cpu = {
        variant: round(sum(r["cpu_mean"] for r in runs) / len(runs), 1)
        for variant, runs in results["variants"].items()
    }
    pairs = [("encrypted", "none"), ("encrypted", "copy"), ("copy", "none")]
    joins = results["joins"].get("encrypted", [])
    firsts = [j["first"] for j in joins if j["first"] is not None]
    alls = [j["all"] for j in joins if j["all"] is not None]
    return {
        "cpu_mean_percent": cpu,
        "cpu_added_percent": {
            f"{a} over {b}": round(100 * (cpu[a] / cpu[b] - 1), 1)
            for a, b in pairs
            if a in cpu and b in cpu
        },
        "joins": len(joins),
        "joins_failed": len(joins) - len(alls),
        "first_remote_frame_ms": {"p50": percentile(firsts, 50), "p99": percentile(firsts, 99)},
        "all_remote_videos_ms": {"p50": percentile(alls, 50), "p99": percentile(alls, 99)},
    }


@pytest.mark.bench
@pytest.mark.usefixtures("operator", "media_node")
async def test_bench_e2ee_call(
    start_signaling: Any,
    namespace: str,
    kube: Client,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    bench_options: argparse.Namespace,
) -> None:
    options = bench_options
    # (session, variant, measured): a fresh session (own SFU + coturn) per call, the variants
    # interleaved, then join-only encrypted calls.
    calls = [(f"{v}-{r}", v, True) for r in range(options.repeat) for v in options.variants]
    calls += [(f"joins-{r}", "encrypted", False) for r in range(options.rounds)]
    for name, _, _ in calls:
        support.create_session(kube, namespace, name, clients=PAGES - 1)
    clip = noisy_camera if options.clip == "noise" else small_camera
    camera = clip(tmp_path, *options.camera)
    async with AsyncExitStack() as stack:
        override: dict[str, Any] = {}
        for name, _, _ in calls:
            pod = await stack.enter_async_context(
                local_media_pod(kube, namespace, name, monkeypatch, tmp_path)
            )
            override |= json.loads(pod.override)
        browsers, roots = [], []
        for _ in range(PAGES):
            known = tree_roots(processes(), os.getpid(), "chromium")
            browsers.append(await stack.enter_async_context(chromium(camera=camera)))
            (root,) = tree_roots(processes(), os.getpid(), "chromium") - known
            roots.append(root)
        signaling = start_signaling(media_override=json.dumps(override))
        indexed = "sprechzimmer_signaling_sessions_indexed"
        support.wait_for(
            "every session indexed", lambda: signaling.metric(indexed) >= len(calls), 60
        )
        results: dict[str, Any] = {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "options": {k: str(v) for k, v in vars(options).items()},
            "variants": {},
            "joins": {},
            "failed_calls": [],
        }
        for name, variant, measured in calls:
            invite = invitation(kube, namespace, name, signaling)
            links = [invite[SecretKey.HOST_LINK_TOKEN.value]]
            links += [invite[SecretKey.CLIENT_LINK_TOKEN.value]] * (PAGES - 1)
            try:
                pages, joins = await join_call(browsers, signaling.url, links, variant)
            except AssertionError as error:  # the known TURN problem (docs/signaling.md)
                results["failed_calls"].append(f"{name}: {str(error).splitlines()[0]}")
                print(name, "failed:", error, flush=True)
                continue
            results["joins"].setdefault(variant, []).extend(joins)
            if measured:
                await asyncio.sleep(options.settle)  # steady state after the joins' key frames
                run = await measure(pages, roots, options.window, timed=variant != "none")
                results["variants"].setdefault(variant, []).append(run)
                print(name, json.dumps(run), flush=True)
            await leave(pages)
    results["summary"] = summary(results)
    print("summary", json.dumps(results["summary"]))
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
    parser.add_argument("--repeat", type=int, default=1, help="calls per variant")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--camera", type=int, nargs=2, default=[320, 240], metavar=("W", "H"))
    parser.add_argument("--clip", choices=("noise", "bars"), default="noise", help="fake camera")
    parser.add_argument("--json", type=Path, help="also write the results here")
    options = parser.parse_args()
    args = [__file__, "-s", "-q", "-p", "conftest", "-p", "no:cacheprovider", "-o", "timeout=1800"]
    return int(pytest.main(args, plugins=[BenchOptions(options)]))


if __name__ == "__main__":
    sys.exit(main())
