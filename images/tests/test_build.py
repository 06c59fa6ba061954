"""images/build.py's pure parts: the deterministic root filesystem tar, the content-hash cache
key, console scripts from wheels, and the docker archive around the rootfs. (The Debian part —
mmdebstrap, chroot — runs in `make images` and its own built-in check, not here.)"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

_spec = importlib.util.spec_from_file_location(
    "images_build", Path(__file__).resolve().parent.parent / "build.py"
)
assert _spec is not None
assert _spec.loader is not None
build = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = build  # dataclasses look their module up there
_spec.loader.exec_module(build)

EPOCH = 1_700_000_000


def _tree(root: Path, files: dict[str, str], mtime: int) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for path in [root, *root.rglob("*")]:
        os.utime(path, (mtime, mtime))
    return root


def test_rootfs_is_deterministic_clamped_root_owned_and_layered(tmp_path: Path) -> None:
    later = EPOCH + 86_400
    base = _tree(
        tmp_path / "base",
        {"usr/bin/python3": "py", "usr/share/doc/x/README": "doc", "etc/os-release": "deb"},
        later,
    )
    (base / "tmp").mkdir()
    stage = _tree(tmp_path / "stage", {"etc/os-release": "ours", "usr/local/bin/app": "#!"}, 1)
    first, second = tmp_path / "a.tar", tmp_path / "b.tar"
    build.write_rootfs([base, stage], first, EPOCH)
    os.utime(base / "usr/bin/python3", (later + 5, later + 5))  # a rebuild's newer mtime
    build.write_rootfs([base, stage], second, EPOCH)
    assert first.read_bytes() == second.read_bytes()

    with tarfile.open(first) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert list(members) == sorted(members)
        assert "./usr/share/doc/x/README" not in members  # documentation dropped
        assert "./usr/share/doc" in members  # … the directory itself stays
        file = tar.extractfile("./etc/os-release")
        assert file is not None
        assert file.read() == b"ours"  # later trees win
        assert members["./tmp"].mode == 0o1777
        assert all(m.uid == 0 and m.gid == 0 and not m.uname for m in members.values())
        assert max(m.mtime for m in members.values()) == EPOCH
        assert members["./usr/local/bin/app"].mtime == 1  # older stays older


def test_cache_key_follows_sources_constraints_and_tag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "repo"
    _tree(
        root,
        {
            "images/media.packages": "python3\ncoturn\n",
            "images/constraints.txt": "aiortc==1.16.0\n",
            "contract/pyproject.toml": "[project]",
            "contract/src/sprechzimmer/contract/__init__.py": "X = 1\n",
            "media-pod/pyproject.toml": "[project]",
            "media-pod/src/sprechzimmer/media/__init__.py": "",
        },
        EPOCH,
    )
    monkeypatch.setattr(build, "ROOT", root)
    monkeypatch.setattr(build, "HERE", root / "images")
    image = build.IMAGES["media"]
    key = build.image_key(image, EPOCH, "0.1.0")
    assert build.image_key(image, EPOCH, "0.1.0") == key
    assert build.image_key(image, EPOCH, "dev") != key
    (root / "contract/src/sprechzimmer/contract/__init__.py").write_text("X = 2\n")
    changed = build.image_key(image, EPOCH, "0.1.0")
    assert changed != key
    (root / "images/constraints.txt").write_text("aiortc==1.16.1\n")
    assert build.image_key(image, EPOCH, "0.1.0") != changed
    # The Debian part depends on the package list only.
    base = build.base_key(image, EPOCH)
    (root / "images/constraints.txt").write_text("aiortc==1.16.0\n")
    assert build.base_key(image, EPOCH) == base
    (root / "images/media.packages").write_text("python3\ncoturn\nlibstdc++6\n")
    assert build.base_key(image, EPOCH) != base


def test_console_scripts_come_from_the_wheel(tmp_path: Path) -> None:
    wheel = tmp_path / "sprechzimmer_media-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(
            "sprechzimmer_media-0.1.0.dist-info/entry_points.txt",
            "[console_scripts]\nsprechzimmer-media = sprechzimmer.media.__main__:main\n"
            "[other]\nx = y:z\n",
        )
    assert build._scripts(wheel) == {"sprechzimmer-media": "sprechzimmer.media.__main__:main"}


def test_archive_has_the_config_and_one_layer(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs.tar"
    with tarfile.open(rootfs, "w") as tar:
        tar.add(_tree(tmp_path / "r", {"etc/passwd": "root"}, EPOCH), arcname=".")
    out = tmp_path / "image.tar"
    image_id = build.write_docker_archive(
        str(rootfs),
        str(out),
        repo_tag="sprechzimmer/media-pod:0.1.0",
        entrypoint=["/usr/local/bin/sprechzimmer-media"],
        user=build.USER,
        env=list(build.ENV),
        workdir="/",
    )
    with tarfile.open(out) as tar:
        manifest_file = tar.extractfile("manifest.json")
        assert manifest_file is not None
        [manifest] = json.load(manifest_file)
        assert manifest["RepoTags"] == ["sprechzimmer/media-pod:0.1.0"]
        config_file = tar.extractfile(manifest["Config"])
        assert config_file is not None
        config_bytes = config_file.read()
        layer = tar.extractfile(manifest["Layers"][0])
        assert layer is not None
        layer_bytes = layer.read()
    config = json.loads(config_bytes)
    assert image_id == "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    assert config["config"]["User"] == "10001:10001"
    assert config["config"]["Entrypoint"] == ["/usr/local/bin/sprechzimmer-media"]
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer_bytes).hexdigest()]
    assert layer_bytes == rootfs.read_bytes()
