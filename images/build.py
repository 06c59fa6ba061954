#!/usr/bin/env python3
"""Build Sprechzimmer's container images without a registry or a Docker daemon.

Each image is a Debian bookworm root filesystem with only the packages in
``images/<image>.packages`` (``mmdebstrap --variant=extract``: no Essential set, so no shell and
no package manager in the image) plus the project's wheels, built by ``pip wheel`` under the
pins of ``images/constraints.txt`` and installed into ``/usr/local/lib/python3.11/dist-packages``
with console scripts in ``/usr/local/bin``. Everything is owned by root, runs as uid 10001 and
needs no writable path. The root filesystem tar is written deterministically (sorted, numeric
owners, mtimes clamped to ``SOURCE_DATE_EPOCH``, bytecode compiled with hash-based
invalidation) and wrapped into a docker-save archive that ``ctr images import`` takes.

Results are cached by content hash in ``~/.cache/sprechzimmer/images/``: the key of an image is
the hash of its package list, the constraints, the component sources, this script and the
epoch, so an unchanged tree costs a hash; the Debian part has its own key (packages, suite,
mirror, epoch), so a code change rebuilds only the Python layer's share.

    images/build.py                         # all images -> .images/<image>.tar
    images/build.py media --import-to /run/containerd/containerd.sock
    images/build.py --update-constraints    # pin what pip resolved (after a dependency change)

``images/Dockerfile`` runs this same pipeline (``--rootfs``) inside a Debian builder for people
with a registry, so both build the same image.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from sprechzimmer.contract.mediapod import RUN_AS_UID
from sprechzimmer.devcluster.images import write_docker_archive

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "images"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sprechzimmer" / "images"
SUITE = "bookworm"
MIRROR = os.environ.get("SPRECHZIMMER_DEBIAN_MIRROR", "http://deb.debian.org/debian")
SITE_PACKAGES = "usr/local/lib/python3.11/dist-packages"
UID = GID = RUN_AS_UID  # the media pod's runAsUser/fsGroup too (one definition)
USER = f"{UID}:{GID}"
PATH = "/usr/local/bin:/usr/bin:/bin"
ENV = [f"PATH={PATH}", "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1", "LANG=C.UTF-8"]
# Documentation, manuals and translations are not needed to run anything.
DROP = ("usr/share/doc/", "usr/share/man/", "usr/share/info/", "usr/share/locale/", "dev/")
# What every image needs besides packages: an identity for uid 10001 and an empty /tmp (the
# chart mounts an emptyDir there; without one Python finds no usable temporary directory).
ACCOUNTS = {  # /etc/passwd and /etc/group
    "passwd": "root:x:0:0:root:/root:/usr/sbin/nologin\n"
    f"sprechzimmer:x:{UID}:{GID}::/nonexistent:/usr/sbin/nologin\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    "group": f"root:x:0:\nsprechzimmer:x:{GID}:\nnogroup:x:65534:\n",
}


@dataclass(frozen=True)
class Image:
    """One deployable: its Debian packages, its Python components and how it starts."""

    name: str
    repository: str
    components: tuple[str, ...]
    entrypoint: tuple[str, ...]
    # Run in the finished image as uid 10001 before it is cached (python3 -c …).
    smoke: str

    @property
    def packages(self) -> list[str]:
        lines = (HERE / f"{self.name}.packages").read_text().splitlines()
        return sorted(x.strip() for x in lines if x.strip() and not x.startswith("#"))


IMAGES = {
    image.name: image
    for image in (
        Image(
            "operator",
            "sprechzimmer/operator",
            ("contract", "operator"),
            ("/usr/local/bin/sprechzimmer-operator",),
            "import sprechzimmer.operator.__main__",
        ),
        Image(
            "signaling",
            "sprechzimmer/signaling",
            ("contract", "signaling"),
            ("/usr/local/bin/sprechzimmer-signaling",),
            "import sprechzimmer.signaling.__main__",
        ),
        # Serves both media pod containers: `sprechzimmer-media …` and `turnserver` (coturn).
        Image(
            "media",
            "sprechzimmer/media-pod",
            ("contract", "media-pod"),
            ("/usr/local/bin/sprechzimmer-media",),
            "import sprechzimmer.media.__main__, shutil; from sprechzimmer.media import "
            "_aiortc_hooks as h; h.check_aiortc(); assert shutil.which('turnserver')",
        ),
    )
}


def app_version() -> str:
    """The chart's appVersion: the tag the chart pulls by default."""
    for line in (ROOT / "charts/sprechzimmer/Chart.yaml").read_text().splitlines():
        if line.startswith("appVersion:"):
            return line.split(":", 1)[1].strip().strip('"')
    raise SystemExit("charts/sprechzimmer/Chart.yaml has no appVersion")


def source_date_epoch(paths: Sequence[str]) -> int:
    """SOURCE_DATE_EPOCH if set, else the time of the last commit touching the inputs."""
    if "SOURCE_DATE_EPOCH" in os.environ:
        return int(os.environ["SOURCE_DATE_EPOCH"])
    out = subprocess.run(
        ["git", "-C", str(ROOT), "log", "-1", "--format=%ct", "--", *paths],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return int(out) if out else 0


def _base_epoch(image: Image) -> int:
    return source_date_epoch([f"images/{image.name}.packages"])


def _files(component: str) -> Iterator[Path]:
    base = ROOT / component
    yield base / "pyproject.toml"
    for path in sorted((base / "src").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            yield path


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:24]


def base_key(image: Image, epoch: int) -> str:
    return _digest(json.dumps([image.packages, SUITE, MIRROR, epoch]).encode())


def image_key(image: Image, epoch: int, tag: str) -> str:
    sources = [
        p.relative_to(ROOT).as_posix().encode() + p.read_bytes()
        for c in image.components
        for p in _files(c)
    ]
    recipe = json.dumps([image.name, image.repository, tag, image.entrypoint, ENV, USER, epoch])
    return _digest(
        base_key(image, epoch).encode(),
        recipe.encode(),
        (HERE / "constraints.txt").read_bytes(),
        Path(__file__).read_bytes(),
        *sources,
    )


def _run(cmd: Sequence[str], **kwargs: object) -> None:
    subprocess.run(cmd, check=True, **kwargs)  # type: ignore[call-overload]


def build_base(image: Image, epoch: int) -> Path:
    """The Debian part as a directory tree (cached): listed packages and their dependencies."""
    target = CACHE / "debian" / base_key(image, epoch)  # shared by images with the same packages
    if target.is_dir():
        return target
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch)}
    _run(
        [
            "mmdebstrap",
            "--quiet",
            "--mode=root",
            "--variant=extract",
            f"--include={','.join(image.packages)}",
            SUITE,
            str(partial),
            MIRROR,
        ],
        env=env,
    )
    # No maintainer scripts ran: build the loader cache and the stdlib's bytecode here instead.
    _run(["ldconfig", "-r", str(partial)])
    _compile(partial / "usr/lib/python3.11", partial)
    for name, text in ACCOUNTS.items():
        (partial / "etc" / name).write_text(text)
    partial.rename(target)
    return target


def _compile(tree: Path, root: Path) -> None:
    """Bytecode that needs no writable path and no timestamps (PEP 552 unchecked hashes)."""
    _run(
        [
            sys.executable,
            "-m",
            "compileall",
            "-q",
            "-j0",
            "--invalidation-mode=unchecked-hash",
            "-s",
            str(root),
            "-p",
            "/",
            str(tree),
        ],
        stdout=subprocess.DEVNULL,
    )


def build_wheels(image: Image, into: Path, *, pinned: bool = True) -> list[Path]:
    """The image's components and every dependency as wheels (PyPI), pinned by constraints.txt."""
    pins = ["--constraint", str(HERE / "constraints.txt")] if pinned else []
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--disable-pip-version-check",
            "--wheel-dir",
            str(into),
            *pins,
            *(str(ROOT / c) for c in image.components),
        ]
    )
    return sorted(into.glob("*.whl"))


def _scripts(wheel: Path) -> dict[str, str]:
    """console_scripts of a wheel: name -> ``module:function``."""
    with zipfile.ZipFile(wheel) as z:
        names = [n for n in z.namelist() if n.endswith(".dist-info/entry_points.txt")]
        text = z.read(names[0]).decode() if names else ""
    scripts: dict[str, str] = {}
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[console_scripts]" and "=" in line:
            name, target = (x.strip() for x in line.split("=", 1))
            scripts[name] = target
    return scripts


def install_wheels(wheels: Sequence[Path], stage: Path) -> None:
    """Install into ``stage`` as the image's /usr/local, scripts run by the image's python3."""
    site = stage / SITE_PACKAGES
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--no-index",
            "--no-compile",
            "--target",
            str(site),
            *map(str, wheels),
        ]
    )
    shutil.rmtree(site / "bin", ignore_errors=True)  # pip's scripts name the build's python
    bindir = stage / "usr/local/bin"
    bindir.mkdir(parents=True, exist_ok=True)
    for wheel in (w for w in wheels if w.name.startswith("sprechzimmer_")):
        for name, target in _scripts(wheel).items():
            module, func = target.split(":")
            script = bindir / name
            script.write_text(
                f"#!/usr/bin/python3\nimport sys\nfrom {module} import {func}\nsys.exit({func}())\n"
            )
            script.chmod(0o755)
    _compile(site, stage)


def _walk(tree: Path) -> Iterator[Path]:
    yield tree
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            yield Path(dirpath) / name


def write_rootfs(trees: Sequence[Path], out: Path, epoch: int) -> None:
    """One deterministic tar of the trees laid over each other (later trees win)."""
    members: dict[str, Path] = {}
    for tree in trees:
        for path in _walk(tree):
            rel = path.relative_to(tree).as_posix()
            name = "." if rel == "." else f"./{rel}"
            if any(rel.startswith(d) for d in DROP) and rel + "/" not in DROP:
                continue
            members[name] = path
    members.setdefault("./tmp", trees[0] / "tmp")
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(members):
            path = members[name]
            info = tar.gettarinfo(str(path), arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = min(int(info.mtime), epoch)
            info.pax_headers = {}
            if name == "./tmp":
                info.mode = 0o1777
            if info.isreg():
                with path.open("rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)


def verify(image: Image, rootfs: Path, scratch: Path) -> None:
    """Every shared library under /usr/local finds its dependencies in the image, and the
    image's smoke import runs there as uid 10001 (catches a missing Debian package)."""
    root = scratch / "verify"
    root.mkdir()
    with tarfile.open(rootfs) as tar:
        tar.extractall(root, filter="fully_trusted")  # noqa: S202 - the tar we just wrote
    chroot = shutil.which("chroot") or "/usr/sbin/chroot"
    problems = []
    for lib in sorted((root / "usr/local").rglob("*.so*")):
        if lib.is_symlink() or not lib.is_file():
            continue
        target = "/" + lib.relative_to(root).as_posix()
        listed = subprocess.run(
            [chroot, str(root), "/lib64/ld-linux-x86-64.so.2", "--list", target],
            capture_output=True,
            text=True,
            check=False,
        )
        if listed.returncode != 0 or "not found" in listed.stdout:
            problems.append(f"{target}: {(listed.stderr or listed.stdout).strip()[:200]}")
    smoke = subprocess.run(
        [chroot, f"--userspec={USER}", str(root), "/usr/bin/python3", "-c", image.smoke],
        env={"PATH": PATH},
        capture_output=True,
        text=True,
        check=False,
    )
    if smoke.returncode != 0:
        problems.append(f"smoke import failed: {smoke.stderr.strip()[-500:]}")
    if problems:
        raise SystemExit(f"image {image.name} is broken:\n  " + "\n  ".join(problems))


def build_rootfs(image: Image, epoch: int, scratch: Path) -> Path:
    """The image's verified root filesystem as a tar in ``scratch``."""
    base = build_base(image, _base_epoch(image))
    stage = scratch / "stage"
    install_wheels(build_wheels(image, scratch / "wheels"), stage)
    rootfs = scratch / "rootfs.tar"
    write_rootfs([base, stage], rootfs, epoch)
    verify(image, rootfs, scratch)
    return rootfs


def export_rootfs(image: Image, target: Path) -> None:
    """The root filesystem unpacked into ``target`` (images/Dockerfile copies it FROM scratch)."""
    with tempfile.TemporaryDirectory() as tmp:
        rootfs = build_rootfs(image, source_date_epoch(["images", *image.components]), Path(tmp))
        with tarfile.open(rootfs) as tar:
            tar.extractall(target, filter="fully_trusted")  # noqa: S202 - the tar we just wrote


def build(image: Image, tag: str, out_dir: Path) -> Path:
    """The image's docker archive in ``out_dir`` (from the cache when its inputs are unchanged)."""
    missing = [c for c in image.components if not (ROOT / c / "pyproject.toml").exists()]
    if missing:
        raise SystemExit(f"image {image.name}: component(s) missing in this checkout: {missing}")
    paths = ["images", *image.components]
    epoch = source_date_epoch(paths)
    key = image_key(image, epoch, tag)
    cached = CACHE / f"{image.name}-{key}.tar"
    if not cached.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
            rootfs = build_rootfs(image, epoch, Path(tmp))
            partial = cached.with_suffix(".partial")
            write_docker_archive(
                str(rootfs),
                str(partial),
                repo_tag=f"{image.repository}:{tag}",
                entrypoint=list(image.entrypoint),
                user=USER,
                env=list(ENV),
                workdir="/",
            )
            partial.rename(cached)
        _prune(image, keep=cached)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{image.name}.tar"
    out.unlink(missing_ok=True)
    if cached.stat().st_dev == out_dir.stat().st_dev:
        os.link(cached, out)  # no copy of a 300 MB archive
    else:
        shutil.copy(cached, out)
    return out


def _prune(image: Image, keep: Path) -> None:
    """Keep one archive per image and the Debian trees still in use: the cache must not grow
    with every edit."""
    for old in CACHE.glob(f"{image.name}-*.tar"):
        if old != keep:
            old.unlink()
    current = {base_key(i, _base_epoch(i)) for i in IMAGES.values()}
    for tree in (CACHE / "debian").iterdir():
        if tree.name not in current:
            shutil.rmtree(tree)


def import_to(socket: str, archives: Sequence[Path]) -> None:
    """Import into containerd's Kubernetes namespace (what the kubelet's CRI sees)."""
    for archive in archives:
        _run(["ctr", "-a", socket, "-n", "k8s.io", "images", "import", str(archive)])


def update_constraints() -> None:
    """Pin every third-party distribution the images resolve to, as pip resolved it now."""
    pins: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for image in IMAGES.values():
            for wheel in build_wheels(image, Path(tmp) / image.name, pinned=False):
                name, version = wheel.name.split("-")[:2]
                if not name.startswith("sprechzimmer"):
                    pins[name.lower().replace("_", "-")] = version
    lines = [f"{n}=={v}" for n, v in sorted(pins.items())]
    header = "# Exact versions of every third-party wheel in the images (images/build.py\n"
    header += "# --update-constraints writes this; images/Dockerfile builds with it too).\n"
    (HERE / "constraints.txt").write_text(header + "\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("images", nargs="*", help=f"any of {', '.join(IMAGES)} (default: all)")
    parser.add_argument("--tag", default=None, help="image tag (default: the chart's appVersion)")
    parser.add_argument("--out", type=Path, default=ROOT / ".images", help="archive directory")
    parser.add_argument("--import-to", metavar="SOCKET", help="containerd socket to import into")
    parser.add_argument("--update-constraints", action="store_true")
    parser.add_argument(
        "--rootfs",
        type=Path,
        metavar="DIR",
        help="unpack the one image's root filesystem into DIR instead (images/Dockerfile)",
    )
    args = parser.parse_args(argv)
    if args.update_constraints:
        update_constraints()
        return 0
    unknown = set(args.images) - set(IMAGES)
    if unknown:
        parser.error(f"unknown image(s): {', '.join(sorted(unknown))}")
    missing = [t for t in ("mmdebstrap", "ldconfig", "chroot") if shutil.which(t) is None]
    if missing or os.geteuid() != 0:
        parser.error(
            f"needs root and {', '.join(missing) or 'mmdebstrap'} "
            "(apt-get install mmdebstrap; root: mmdebstrap --mode=root and chroot)"
        )
    if args.rootfs:
        if len(args.images) != 1:
            parser.error("--rootfs takes exactly one image")
        export_rootfs(IMAGES[args.images[0]], args.rootfs)
        return 0
    tag = args.tag or app_version()
    archives = []
    for name in args.images or list(IMAGES):
        started = time.monotonic()
        archive = build(IMAGES[name], tag, args.out)
        size = archive.stat().st_size / 1e6
        took = time.monotonic() - started
        print(f"{IMAGES[name].repository}:{tag}  {archive}  {size:.0f} MB  {took:.1f} s")
        archives.append(archive)
    if args.import_to:
        import_to(args.import_to, archives)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
