"""Safe extraction of tar and zip archives: every member is checked before anything is written.

Refused (the whole archive, with the member named): an absolute path, a `..` component, a drive
letter, a link (symbolic or hard) whose target lies outside the destination, a device, FIFO or
other special file. Tar members are then extracted with Python's own `filter="data"` as a second
guard; zip members are copied one by one (zip symlinks are refused: datasets have none).
"""

from __future__ import annotations

import shutil
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from ranklist.errors import UserError


class UnsafeArchiveError(UserError):
    """An archive with a member that would land outside the destination or is not a plain file."""


def _check_name(archive: Path, name: str) -> PurePosixPath:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"{archive.name}: member {name!r} has an absolute path; refused, nothing extracted")
    if ".." in path.parts:
        raise UnsafeArchiveError(
            f"{archive.name}: member {name!r} climbs out of the folder ('..'); refused, nothing extracted"
        )
    return path


def _inside(base: PurePosixPath, target: str) -> bool:
    """Whether a link target (relative to the link's folder, or absolute) stays below the destination."""
    if target.startswith("/"):
        return False
    depth = 0
    for part in (base / target).parts:
        depth += -1 if part == ".." else 0 if part in ("", ".") else 1
        if depth < 0:
            return False
    return True


def _check_tar(archive: Path, members: list[tarfile.TarInfo]) -> None:
    for member in members:
        path = _check_name(archive, member.name)
        if member.issym() and not _inside(path.parent, member.linkname):
            raise UnsafeArchiveError(
                f"{archive.name}: symlink {member.name!r} -> {member.linkname!r} points outside the folder; "
                "refused, nothing extracted"
            )
        if member.islnk() and not _inside(PurePosixPath(), member.linkname):
            raise UnsafeArchiveError(
                f"{archive.name}: hard link {member.name!r} -> {member.linkname!r} points outside the folder; "
                "refused, nothing extracted"
            )
        if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
            raise UnsafeArchiveError(
                f"{archive.name}: member {member.name!r} is a device or special file; refused, nothing extracted"
            )


def _check_zip(archive: Path, members: list[zipfile.ZipInfo]) -> None:
    for member in members:
        _check_name(archive, member.filename)
        mode = member.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise UnsafeArchiveError(
                f"{archive.name}: member {member.filename!r} is a symbolic link; refused, nothing extracted"
            )
        if mode and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise UnsafeArchiveError(
                f"{archive.name}: member {member.filename!r} is a special file; refused, nothing extracted"
            )


def _extract_zip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as handle:
        members = handle.infolist()
        _check_zip(archive, members)
        for member in members:
            target = dest.joinpath(*_check_name(archive, member.filename).parts)
            if member.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with handle.open(member) as source, open(target, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)


def _extract_tar(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as handle:
        members = handle.getmembers()
        _check_tar(archive, members)
        handle.extractall(dest, members=members, filter="data")


def extract(archive: Path, dest: Path) -> None:
    """Extract a .zip, a tar (any compression) or place a plain file, into `dest` (which must exist).
    Raises UnsafeArchiveError before writing anything when a member is unsafe."""
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, dest)
        elif tarfile.is_tarfile(archive):
            _extract_tar(archive, dest)
        else:
            shutil.copyfile(archive, dest / archive.name)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as error:
        raise UnsafeArchiveError(f"{archive.name}: not a readable archive ({error})") from None
