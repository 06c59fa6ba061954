"""What the real node changes on this machine, recorded before it starts and undone after.

kubelet, kube-proxy, containerd and the CNI plugins change host state that outlives them:
sysctls, iptables chains, mounts, a bridge, cgroups, network namespaces and a few hard-coded
directories. :func:`snapshot` records the state of exactly those things before the node starts;
:func:`restore` puts back what differs, touching only what was not there before (so another
tool's chains, namespaces or directories are left alone). ``restore`` also works after a crash:
it kills what still runs in the node's cgroups before unmounting and deleting.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Sysctls the kubelet (panic, overcommit, keys), kube-proxy (route_localnet, conntrack) and the
# bridge plugin (forwarding) may write. Missing ones (no such module loaded) are skipped.
SYSCTLS = (
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "net/ipv4/ip_forward",
    "net/ipv6/conf/all/forwarding",
    "net/ipv4/conf/all/route_localnet",
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
    "net/netfilter/nf_conntrack_max",
    "net/netfilter/nf_conntrack_tcp_timeout_established",
    "net/netfilter/nf_conntrack_tcp_timeout_close_wait",
)
# Directories the tools hard-code whatever their configuration says.
HARD_CODED_PATHS = (
    "/run/containerd",  # containerd 1.6's shim sockets (/run/containerd/s)
    "/run/netns",  # CRI's pod network namespaces
    "/var/lib/cni",  # libcni's result cache
    "/var/log/containers",  # the kubelet's log symlinks
    "/var/lib/kubelet",
    "/opt/containerd",
)
_CHAIN_PREFIXES = ("KUBE-", "CNI-")
_TABLES = ("filter", "nat", "mangle")
_IPTABLES = ("iptables", "ip6tables")
_CGROUP = Path("/sys/fs/cgroup")
_PROC_SYS = Path("/proc/sys")


@dataclass
class HostSnapshot:
    """The host's state before the node started (JSON-serialisable)."""

    sysctls: dict[str, str]
    chains: list[str]  # "iptables nat CNI-HOSTPORT-DNAT"
    absent_paths: list[str]
    absent_cgroups: list[str]
    netns: list[str] = field(default_factory=list)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> HostSnapshot:
        return cls(**json.loads(path.read_text()))


def read_sysctls() -> dict[str, str]:
    values = {}
    for name in SYSCTLS:
        with contextlib.suppress(OSError):
            values[name] = (_PROC_SYS / name).read_text().strip()
    return values


def chains() -> set[str]:
    """Our kind of iptables chains (``KUBE-*``, ``CNI-*``) that exist now, v4 and v6."""
    found = set()
    for tool in _IPTABLES:
        for table in _TABLES:
            for line in _iptables_save(tool, table):
                if line.startswith(":") and line[1:].startswith(_CHAIN_PREFIXES):
                    found.add(f"{tool} {table} {line[1:].split()[0]}")
    return found


def kubepods_cgroups() -> list[Path]:
    """``kubepods`` in each cgroup v1 hierarchy (or at the v2 root)."""
    if (_CGROUP / "cgroup.controllers").exists():
        return [_CGROUP / "kubepods"]
    return [d / "kubepods" for d in sorted(_CGROUP.iterdir()) if d.is_dir() and not d.is_symlink()]


def _netns() -> list[str]:
    with contextlib.suppress(FileNotFoundError):
        return sorted(p.name for p in Path("/run/netns").iterdir())
    return []


def snapshot(node_root: Path) -> HostSnapshot:
    """The state of everything the node may change; ``node_root`` is where it keeps its own."""
    paths = (*HARD_CODED_PATHS, str(node_root))
    return HostSnapshot(
        sysctls=read_sysctls(),
        chains=sorted(chains()),
        absent_paths=[p for p in paths if not os.path.lexists(p)],
        absent_cgroups=[str(c) for c in kubepods_cgroups() if not c.exists()],
        netns=_netns(),
    )


def restore(before: HostSnapshot, node_root: Path, bridge: str) -> list[str]:
    """Undo what the node changed; return what was done (for the log). Idempotent."""
    done: list[str] = []
    killed = _kill_cgroup_processes([Path(c) for c in before.absent_cgroups])
    killed += _kill_shims(node_root)
    if killed:
        done.append(f"killed {killed} leftover container and shim processes")
    done += _remove_netns(set(before.netns))
    done += _unmount_under([node_root, *map(Path, before.absent_paths)])
    done += _remove_cgroups([Path(c) for c in before.absent_cgroups])
    if Path(f"/sys/class/net/{bridge}").exists():
        subprocess.run(["ip", "link", "delete", bridge], check=False, capture_output=True)
        done.append(f"deleted bridge {bridge}")
    done += _remove_chains(chains() - set(before.chains))
    for name, value in before.sysctls.items():
        path = _PROC_SYS / name
        with contextlib.suppress(OSError):
            if path.read_text().strip() != value:
                path.write_text(value)
                done.append(f"restored {name.replace('/', '.')} = {value}")
    for created in before.absent_paths:
        if os.path.lexists(created):
            shutil.rmtree(created, ignore_errors=True)
            done.append(f"removed {created}")
    return done


def _kill_cgroup_processes(roots: Iterable[Path]) -> int:
    pids = {
        int(pid)
        for root in roots
        for group in _walk(root)
        for pid in _read_lines(group / "cgroup.procs")
    }
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


def _kill_shims(node_root: Path) -> int:
    """containerd's shims outlive it; ours name its socket (under ``node_root``) on their argv."""
    killed = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"containerd-shim" in argv[0] and any(str(node_root).encode() in a for a in argv):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(proc.name), signal.SIGKILL)
                killed += 1
    return killed


def _walk(root: Path) -> Iterator[Path]:
    """Cgroup directories under ``root``, deepest first."""
    if not root.is_dir():
        return
    for dirpath, _dirnames, _files in sorted(os.walk(root), key=lambda w: -w[0].count("/")):
        yield Path(dirpath)


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text().split()
    except OSError:
        return []


def _remove_cgroups(roots: Iterable[Path]) -> list[str]:
    done = []
    for root in roots:
        if not root.exists():
            continue
        for group in _walk(root):
            with contextlib.suppress(OSError):
                group.rmdir()
        done.append(f"removed cgroup {root}" if not root.exists() else f"could not remove {root}")
    return done


def _remove_netns(before: set[str]) -> list[str]:
    done = []
    for name in set(_netns()) - before:
        path = f"/run/netns/{name}"
        subprocess.run(["umount", path], check=False, capture_output=True)
        with contextlib.suppress(OSError):
            os.remove(path)
            done.append(f"removed network namespace {name}")
    return done


def mounts_under(roots: Iterable[Path]) -> list[str]:
    """Mount points at or below any of ``roots``, deepest first."""
    prefixes = [str(r).rstrip("/") for r in roots]
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if any(point == p or point.startswith(p + "/") for p in prefixes):
            points.append(point)
    return sorted(set(points), key=lambda p: -p.count("/"))


def clear(path: Path) -> list[str]:
    """Unmount everything below ``path`` and delete it (a crashed node's leftover root)."""
    done = _unmount_under([path])
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)
        done.append(f"removed {path}")
    return done


def _unmount_under(roots: list[Path]) -> list[str]:
    done = []
    # A bind mount may be stacked several times (the kubelet makes its root dir rshared).
    for _ in range(5):
        points = mounts_under(roots)
        if not points:
            break
        for point in points:
            if subprocess.run(["umount", point], check=False, capture_output=True).returncode:
                subprocess.run(["umount", "-l", point], check=False, capture_output=True)
            done.append(f"unmounted {point}")
    return done


def _iptables_save(tool: str, table: str) -> list[str]:
    if shutil.which(f"{tool}-save") is None:
        return []
    result = subprocess.run(
        [f"{tool}-save", "-t", table], check=False, capture_output=True, text=True
    )
    return result.stdout.splitlines() if result.returncode == 0 else []


def _remove_chains(new: set[str]) -> list[str]:
    """Delete the rules that jump to ``new`` chains, then flush and delete the chains."""
    done = []
    by_table: dict[tuple[str, str], set[str]] = {}
    for entry in new:
        tool, table, chain = entry.split()
        by_table.setdefault((tool, table), set()).add(chain)
    for (tool, table), names in sorted(by_table.items()):
        for line in _iptables_save(tool, table):
            if not line.startswith("-A "):
                continue
            rule = shlex.split(line)
            target = _jump_target(rule)
            if target in names and rule[1] not in names:
                subprocess.run([tool, "-w", "-t", table, "-D", *rule[1:]], check=False)
        for verb in ("-F", "-X"):
            for chain in sorted(names):
                subprocess.run(
                    [tool, "-w", "-t", table, verb, chain], check=False, capture_output=True
                )
        done.append(f"deleted {tool} {table} chains {', '.join(sorted(names))}")
    return done


def _jump_target(rule: list[str]) -> str | None:
    for flag in ("-j", "-g"):
        if flag in rule:
            return rule[rule.index(flag) + 1]
    return None
