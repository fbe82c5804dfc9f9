"""The images the throwaway cluster's pods run, as OCI archives for `ctr -n k8s.io images import FILE.tar`.

No registry is reachable, so every image is written here from local files (demo.sandbox.write_oci_image):
- pause: the pod sandbox, tools/gomod/multus/pause, laid out like registry.k8s.io/pause (/pause, user 65535);
- busybox: the test pods' image, the machine's static busybox with all its applets;
- Multus v4.3.0 thin and thick, the real binaries tools/build-real builds, laid out as upstream's
  images/Dockerfile and images/Dockerfile.thick do: /usr/src/multus-cni/bin/* in both, thin also has
  /install_multus and /thin_entrypoint; Entrypoint /thin_entrypoint resp. /usr/src/multus-cni/bin/multus-daemon.
  Upstream's bases (distroless, debian-slim) are replaced by a static busybox, so a shell is there for
  `kubectl exec` as in the thick image. Upstream's kubeconfig_generator and cert-approver are left out: the
  chart runs neither.
The two Multus images share their first layer (busybox and /usr/src/multus-cni), which containerd then stores
and unpacks once per node.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from demo import sandbox
from demo.sandbox import ImageEntry

PAUSE_IMAGE = "localhost/multus-cleanup-test/pause:1"
BUSYBOX_IMAGE = "localhost/multus-cleanup-test/busybox:1"
MULTUS_VERSION = "v4.3.0"
MULTUS_REPOSITORY = "localhost/multus-cni"
MULTUS_THIN_IMAGE = MULTUS_REPOSITORY + ":" + MULTUS_VERSION
MULTUS_THICK_IMAGE = MULTUS_REPOSITORY + ":" + MULTUS_VERSION + "-thick"

# What tools/build-real multus puts in bin/; the Multus images carry all but pause in MULTUS_BIN_DIR.
MULTUS_BINARIES = ("multus", "multus-shim", "multus-daemon", "install_multus", "thin_entrypoint", "passthru")
PAUSE_BINARY = "pause"
MULTUS_SRC_DIR = "usr/src/multus-cni"
MULTUS_BIN_DIR = MULTUS_SRC_DIR + "/bin"
# distroless's and debian's PATH: upstream's images run their commands with it
IMAGE_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MULTUS_LABELS = {"org.opencontainers.image.source": "https://github.com/k8snetworkplumbingwg/multus-cni",
                 "org.opencontainers.image.version": MULTUS_VERSION}
# registry.k8s.io/pause runs as this user: the sandbox needs no privileges
PAUSE_USER = "65535:65535"

# Sources of the writer: a change to either rebuilds every archive.
_BUILDER_SOURCES = (Path(__file__), Path(sandbox.__file__))


class ImageBuildError(RuntimeError):
    """An input of an image is missing (the message says which and how to get it)."""


@dataclass(frozen=True)
class ImageSpec:
    """One image: its ref, its archive's file name, its layers and its config."""

    ref: str
    archive: str
    layers: tuple[tuple[ImageEntry, ...], ...]
    config: dict[str, Any]

    def inputs_digest(self, file_digest: dict[Path, str]) -> str:
        """A digest of everything the archive is made of: file contents (memoised in `file_digest`, since the
        Multus images share their binaries), entry metadata, the config and the writer's own source."""
        h = hashlib.sha256()
        for source in _BUILDER_SOURCES:
            h.update(hashlib.sha256(source.read_bytes()).digest())
        h.update(json.dumps([self.ref, self.config], sort_keys=True).encode())
        for i, layer in enumerate(self.layers):
            h.update(f"layer {i}\n".encode())
            for e in layer:
                data = _digest_of(e.data, file_digest) if isinstance(e.data, Path) else e.data.hex()
                h.update(json.dumps([e.path, e.kind.decode(), e.mode, e.link, data]).encode())
        return h.hexdigest()


def _digest_of(path: Path, memo: dict[Path, str]) -> str:
    if path not in memo:
        with path.open("rb") as f:
            memo[path] = hashlib.file_digest(f, "sha256").hexdigest()
    return memo[path]


def _busybox() -> tuple[Path, tuple[str, ...]]:
    """The machine's static busybox and every applet it has (test pods and `kubectl exec` want more than sh)."""
    busybox = sandbox.find_static_busybox()
    if busybox is None:
        raise ImageBuildError("no statically linked busybox: apt-get install -y busybox-static")
    listing = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True, timeout=30)
    applets = tuple(a for a in listing.stdout.split() if a and "/" not in a)
    return busybox, applets


def _dirs(*paths: str) -> list[ImageEntry]:
    return [ImageEntry.dir(p) for p in paths]


def image_specs(multus_bin: Path, busybox: Path, applets: Sequence[str]) -> list[ImageSpec]:
    """The four images; `multus_bin` is tools/build-real's multus bin/ (its LICENSE, if any, beside it)."""
    missing = [n for n in (*MULTUS_BINARIES, PAUSE_BINARY) if not (multus_bin / n).is_file()]
    if missing:
        raise ImageBuildError(f"{multus_bin} lacks {', '.join(missing)}: run tools/build-real multus")
    shell = sandbox.busybox_entries(busybox, applets)
    multus = [
        *shell, *_dirs("usr", "usr/src", MULTUS_SRC_DIR, MULTUS_BIN_DIR),
        # as in upstream's Debian-based images: the runtime hands Multus netns paths under /var/run/netns
        ImageEntry.symlink("var/run", "/run"),
        *(ImageEntry(f"{MULTUS_BIN_DIR}/{n}", data=multus_bin / n) for n in MULTUS_BINARIES),
    ]
    license_file = multus_bin.parent / "LICENSE"
    if license_file.is_file():
        multus.append(ImageEntry(f"{MULTUS_SRC_DIR}/LICENSE", mode=0o644, data=license_file))
    # upstream's thin Dockerfile COPYs these two to / as well: the chart's thin DaemonSet runs them from there
    thin_top = tuple(ImageEntry(n, data=multus_bin / n) for n in ("install_multus", "thin_entrypoint"))
    common = {"Env": [IMAGE_PATH], "WorkingDir": "/", "Labels": MULTUS_LABELS}
    return [
        ImageSpec(PAUSE_IMAGE, "pause.tar", ((ImageEntry("pause", data=multus_bin / PAUSE_BINARY),),),
                  {"Entrypoint": ["/pause"], "User": PAUSE_USER, "WorkingDir": "/"}),
        ImageSpec(BUSYBOX_IMAGE, "busybox.tar", (tuple(shell),),
                  {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"], "WorkingDir": "/"}),
        ImageSpec(MULTUS_THIN_IMAGE, "multus-thin.tar", (tuple(multus), thin_top),
                  {**common, "Entrypoint": ["/thin_entrypoint"]}),
        ImageSpec(MULTUS_THICK_IMAGE, "multus-thick.tar", (tuple(multus),),
                  {**common, "Entrypoint": [f"/{MULTUS_BIN_DIR}/multus-daemon"]}),
    ]


def build_images(multus_bin: Path, out_dir: Path) -> dict[str, Path]:
    """Write the pause, busybox and Multus thin/thick archives into `out_dir`; returns image ref -> archive.

    An archive whose inputs did not change (its `.inputs` file holds their digest) is not written again; an
    archive is renamed into place before its digest is recorded, so an interrupted build is redone next time.
    """
    busybox, applets = _busybox()
    out_dir.mkdir(parents=True, exist_ok=True)
    file_digest: dict[Path, str] = {}
    result: dict[str, Path] = {}
    for spec in image_specs(multus_bin, busybox, applets):
        archive = out_dir / spec.archive
        stamp = out_dir / (spec.archive + ".inputs")
        digest = spec.inputs_digest(file_digest)
        if not (archive.is_file() and stamp.is_file() and stamp.read_text().strip() == digest):
            partial = out_dir / (spec.archive + ".partial")
            try:
                sandbox.write_oci_image(partial, spec.ref, spec.layers, spec.config)
                os.replace(partial, archive)
            finally:
                partial.unlink(missing_ok=True)
            stamp.write_text(digest + "\n")
        result[spec.ref] = archive
    return result
