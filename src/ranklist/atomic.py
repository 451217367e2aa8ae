"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Everything ranklist persists (checkpoints, caches, indexes, run summaries) goes through here.
Torch files also carry a SHA-256 of their contents, checked by load_torch_checked: a bit-flipped
checkpoint is refused instead of loading silently.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path`, on error it is removed.

    The temporary file lives in the same folder so that the final `os.replace` is a rename on one
    file system (atomic on POSIX), and it is fsync'ed first so a crash cannot leave an empty file.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        if error.filename is None and error.strerror:  # e.g. a full disk met while writing: say where
            raise OSError(error.errno, error.strerror, str(target)) from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write `data` to `path` atomically: readers see the old file or the whole new one."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """torch.save, atomically, plus a record holding the SHA-256 of every other record of the file
    (torch's format is a zip archive; torch.load ignores the extra record)."""
    import torch

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            try:
                torch.save(obj, handle)
            except (
                RuntimeError
            ) as error:  # torch's writer, closing after a failed write, hides the OSError (a full disk)
                if isinstance(error.__context__, OSError):
                    raise error.__context__ from None
                raise
        with zipfile.ZipFile(tmp) as archive:
            digest = _contents_sha256(archive)
            folder = archive.infolist()[0].filename.split("/")[0]
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(f"{folder}/{CHECKSUM_RECORD}", digest)


CHECKSUM_RECORD = "ranklist_sha256"


def file_digest(path: str | os.PathLike[str], algorithm: str = "sha256") -> str:
    """The hex digest of a file's bytes, read in 1 MiB blocks (caches, index files, downloads)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def load_torch_checked(path: str | os.PathLike[str], map_location: Any = "cpu", *, weights_only: bool = False) -> Any:
    """torch.load of a file written by atomic_torch_save, its checksum verified first.

    A missing file is FileNotFoundError; an empty, truncated, bit-flipped or foreign file is one
    ValueError naming it, and so is a file without a checksum record (damage to it could not be
    detected). weights_only=False (the default) unpickles arbitrary objects: only for trusted files.
    """
    import torch

    target = Path(path)
    if target.is_dir():
        raise ValueError(f"cannot read checkpoint {target}: it is a folder, not a file")
    if not target.is_file():
        raise FileNotFoundError(f"checkpoint not found: {target}")
    if target.stat().st_size == 0:
        raise ValueError(f"cannot read checkpoint {target}: the file is empty (0 bytes)")
    verified = verify_torch_checksum(target)
    try:
        loaded = torch.load(target, map_location=map_location, weights_only=weights_only)
    except MemoryError:
        raise
    except Exception as error:  # pickle/zip errors of a truncated or foreign file have no common type
        foreign = _foreign_file(target)
        detail = foreign or " ".join(str(error).split())[:300] or type(error).__name__
        if not foreign and weights_only and str(error).startswith("Weights only load failed"):
            found = [line.strip() for line in str(error).splitlines() if "Unsupported" in line]
            detail = (
                "not a ranklist checkpoint: it holds objects other than tensors and plain data, which are not "
                f"unpickled (loading them could run code){'; ' + found[0][:160] if found else ''}"
            )
        raise ValueError(f"cannot read checkpoint {target}: {detail}") from error
    if not verified:  # checked after torch.load so that a foreign file is still named as foreign
        raise ValueError(
            f"cannot read checkpoint {target}: it has no checksum record (ranklist's save_model and "
            "training runs write one), so damage to it could not be detected"
        )
    return loaded


TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0a"  # the pickle header of torch's pre-1.6 (non-zip) format


def _foreign_file(target: Path) -> str | None:
    """Why a file torch cannot load is no checkpoint, in the user's terms (torch's own messages name
    zip internals, or a bare number for a text file)."""
    with open(target, "rb") as handle:
        head = handle.read(8)
    size = target.stat().st_size
    if head.startswith(b"PK\x03\x04") and not zipfile.is_zipfile(target):
        return f"the file is truncated ({size} bytes, its end is missing): it was not written or copied completely"
    if zipfile.is_zipfile(target):
        with zipfile.ZipFile(target) as archive:
            names = archive.namelist()
        if not any(name.endswith("data.pkl") for name in names):
            kind = (
                " (a numpy .npz, e.g. from `ranklist embed`?)"
                if names and all(n.endswith(".npy") for n in names)
                else ""
            )
            return f"not a PyTorch checkpoint: a zip archive of {', '.join(names[:4]) or 'nothing'}{kind}"
        return None
    if not head.startswith(TORCH_LEGACY_MAGIC):
        return f"not a PyTorch checkpoint (a {size}-byte file starting {head!r})"
    return None


def verify_torch_checksum(path: str | os.PathLike[str]) -> bool:
    """Check a torch file's checksum record (and the zip's CRC-32s); True if it had one.

    ValueError naming the file on any mismatch; False for files without a record (load_torch_checked refuses them).
    """
    if not zipfile.is_zipfile(path):
        return False  # not a zip (truncated, foreign, or torch's legacy format): torch.load decides
    try:
        with zipfile.ZipFile(path) as archive:
            record = next((n for n in archive.namelist() if n.split("/")[-1] == CHECKSUM_RECORD), None)
            if record is None:
                return False
            recorded = archive.read(record).decode("ascii", errors="replace")
            actual = _contents_sha256(archive)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as error:  # BadZipFile: CRC-32 mismatches too
        raise ValueError(f"checkpoint {path} is damaged: {error}") from error
    if recorded != actual:
        raise ValueError(
            f"checkpoint {path} is damaged: its contents hash to SHA-256 {actual[:16]}..., "
            f"but {recorded[:16]}... was recorded when it was saved"
        )
    return True


def _contents_sha256(archive: zipfile.ZipFile) -> str:
    """SHA-256 over every record but the checksum's: names, sizes and bytes, in archive order."""
    digest = hashlib.sha256()
    for info in archive.infolist():
        if info.filename.split("/")[-1] == CHECKSUM_RECORD:
            continue
        digest.update(f"{info.filename}\0{info.file_size}\0".encode())
        with archive.open(info) as record:
            for chunk in iter(lambda: record.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()
