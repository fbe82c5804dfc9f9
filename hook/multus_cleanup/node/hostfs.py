"""Safe access to a node's filesystem mounted at a host root.

Every host path is resolved chroot-style: symlinks in directory components are followed, but an absolute
link target or `..` can never leave the host root. The last component is never followed, so a link is
removed as a link. Removal and backup only ever act on paths the engine was configured with.
"""

from __future__ import annotations

import errno
import os
import posixpath
import shutil
import stat
from collections import deque
from dataclasses import dataclass
from pathlib import Path

_MAX_LINK_HOPS = 40


class HostPathError(OSError):
    """An operation on a host path failed; the message names the host path and the reason."""

    def __init__(self, errno_value: int | None, message: str) -> None:
        super().__init__(errno_value, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def describe(err: OSError) -> str:
    if err.errno == errno.EROFS:
        return "read-only file system"
    if err.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return err.strerror or str(err)


@dataclass(frozen=True)
class Entry:
    """An existing host path and what it is (from lstat: a link is a link)."""

    host_path: str
    real: Path
    mode: int

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)

    @property
    def is_socket_or_fifo(self) -> bool:
        return stat.S_ISSOCK(self.mode) or stat.S_ISFIFO(self.mode)


class HostFS:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(os.path.abspath(root))

    # -- resolution -------------------------------------------------------------------------------------
    def resolve_dir(self, host_dir: str) -> Path | None:
        """The real path of a host directory, links followed inside the root; None if absent or not a dir."""
        real = self._resolve(host_dir, follow_last=True)
        if real is None or not real.is_dir():
            return None
        return real

    def entry(self, host_path: str) -> Entry | None:
        """The host path itself (last component not followed), or None if it does not exist."""
        parent, name = posixpath.split(host_path)
        real_parent = self.resolve_dir(parent)
        if real_parent is None:
            return None
        real = real_parent / name
        try:
            mode = os.lstat(real).st_mode
        except FileNotFoundError:
            return None
        return Entry(host_path, real, mode)

    def list_dir(self, host_dir: str) -> list[str]:
        """Names in a host directory, sorted as libcni sorts them (bytewise); [] if the dir is absent."""
        real = self.resolve_dir(host_dir)
        if real is None:
            return []
        return sorted(os.listdir(real))

    def read_text(self, host_path: str, limit: int = 1 << 20) -> str | None:
        """A regular file's text (a link to a file inside the root is followed, as the runtime would)."""
        real = self._resolve(host_path, follow_last=True)
        if real is None or not real.is_file():
            return None
        with real.open("rb") as handle:
            return handle.read(limit).decode("utf-8", errors="replace")

    def is_executable_file(self, host_path: str) -> bool:
        real = self._resolve(host_path, follow_last=True)
        return real is not None and real.is_file() and os.access(real, os.X_OK)

    def _resolve(self, host_path: str, *, follow_last: bool) -> Path | None:
        pending = deque(part for part in host_path.split("/") if part)
        current: list[str] = []
        hops = 0
        while pending:
            part = pending.popleft()
            if part == ".":
                continue
            if part == "..":
                if current:
                    current.pop()
                continue
            candidate = self.root.joinpath(*current, part)
            try:
                mode = os.lstat(candidate).st_mode
            except (FileNotFoundError, NotADirectoryError):
                return None
            if stat.S_ISLNK(mode) and (pending or follow_last):
                hops += 1
                if hops > _MAX_LINK_HOPS:
                    raise HostPathError(errno.ELOOP, f"{host_path}: too many levels of symbolic links")
                target = os.readlink(candidate)
                if target.startswith("/"):
                    current = []
                pending.extendleft(reversed([p for p in target.split("/") if p]))
                continue
            if pending and not stat.S_ISDIR(mode):
                return None
            current.append(part)
        return self.root.joinpath(*current)

    # -- preflight ------------------------------------------------------------------------------------
    def why_not_writable(self, real_dir: Path) -> str | None:
        """None if entries in real_dir can be created and removed, else the reason in words."""
        try:
            if os.statvfs(real_dir).f_flag & os.ST_RDONLY:
                return "read-only file system"
        except OSError as err:
            return describe(err)
        if not os.access(real_dir, os.W_OK | os.X_OK):
            return "permission denied"
        return None

    def why_tree_not_removable(self, entry: Entry) -> str | None:
        """Check the parent and, for a real directory, every directory inside it."""
        reason = self.why_not_writable(entry.real.parent)
        if reason:
            return f"{posixpath.dirname(entry.host_path)}: {reason}"
        if entry.is_dir:
            for dirpath, _dirs, _files in os.walk(entry.real, followlinks=False):
                reason = self.why_not_writable(Path(dirpath))
                if reason:
                    inner = os.path.relpath(dirpath, entry.real)
                    where = entry.host_path if inner == "." else posixpath.join(entry.host_path, inner)
                    return f"{where}: {reason}"
        return None

    # -- changes --------------------------------------------------------------------------------------
    def remove(self, entry: Entry) -> bool:
        """Remove a file, link or directory tree. Returns False if a directory had to stay because it is a
        mount point (emptied instead)."""
        try:
            if entry.is_dir:
                return _rmtree_keep_mountpoint(entry.real)
            os.unlink(entry.real)
            return True
        except OSError as err:
            raise HostPathError(err.errno, f"cannot remove {entry.host_path}: {describe(err)}") from err

    def rename(self, entry: Entry, host_target: str) -> None:
        """Atomic rename inside one directory (restoring a renamed primary config)."""
        real_parent = self.resolve_dir(posixpath.dirname(host_target))
        if real_parent is None:
            raise HostPathError(errno.ENOENT, f"cannot restore {host_target}: its directory is gone")
        try:
            os.rename(entry.real, real_parent / posixpath.basename(host_target))
        except OSError as err:
            raise HostPathError(err.errno, f"cannot rename {entry.host_path} to {host_target}: "
                                           f"{describe(err)}") from err

    def move_to_backup(self, entry: Entry, backup_dir: str) -> tuple[str, bool]:
        """Move an entry under backup_dir, mirroring its host path. Returns (backup host path, fully moved).

        A socket or FIFO is only meaningful to a live process: it is removed, not copied.
        """
        if entry.is_socket_or_fifo:
            self.remove(entry)
            return "", True
        target_host = _free_name(self, posixpath.join(backup_dir, entry.host_path.lstrip("/")))
        parent_host = posixpath.dirname(target_host)
        real_parent = self.makedirs(parent_host)
        target = real_parent / posixpath.basename(target_host)
        try:
            try:
                os.rename(entry.real, target)
                return target_host, True
            except OSError as err:
                if err.errno not in (errno.EXDEV, errno.EBUSY):
                    raise
            # Another filesystem, or a mount point that cannot move: copy, then remove what was copied.
            if entry.is_dir:
                shutil.copytree(entry.real, target, symlinks=True, ignore=_skip_special_files)
                return target_host, _rmtree_keep_mountpoint(entry.real)
            shutil.copy2(entry.real, target, follow_symlinks=False)
            os.unlink(entry.real)
            return target_host, True
        except OSError as err:
            raise HostPathError(err.errno, f"cannot back up {entry.host_path} to {target_host}: "
                                           f"{describe(err)}") from err

    def makedirs(self, host_dir: str) -> Path:
        """Create a host directory (mode 0700) and its parents inside the root; returns its real path."""
        parts = [p for p in host_dir.split("/") if p]
        built = "/"
        for part in parts:
            built = posixpath.join(built, part)
            real = self.resolve_dir(built)
            if real is not None:
                continue
            parent = self.resolve_dir(posixpath.dirname(built))
            if parent is None:
                raise HostPathError(errno.ENOTDIR, f"cannot create {built}: a parent is not a directory")
            try:
                os.mkdir(parent / part, 0o700)
            except OSError as err:
                raise HostPathError(err.errno, f"cannot create {built}: {describe(err)}") from err
        real = self.resolve_dir(host_dir)
        assert real is not None
        return real


def _free_name(fs: HostFS, host_path: str) -> str:
    """host_path, or host_path.1, .2 ... if an earlier run already backed up something there."""
    candidate, n = host_path, 0
    while fs.entry(candidate) is not None:
        n += 1
        candidate = f"{host_path}.{n}"
    return candidate


def _skip_special_files(directory: str, names: list[str]) -> set[str]:
    skipped = set()
    for name in names:
        mode = os.lstat(os.path.join(directory, name)).st_mode
        if stat.S_ISSOCK(mode) or stat.S_ISFIFO(mode):
            skipped.add(name)
    return skipped


def _rmtree_keep_mountpoint(real: Path) -> bool:
    """shutil.rmtree (never follows links inside the tree); a mount point is emptied and kept."""
    for child in os.listdir(real):
        path = real / child
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            os.unlink(path)
    try:
        os.rmdir(real)
    except OSError as err:
        if err.errno == errno.EBUSY:
            return False
        raise
    return True
