"""Resumable HTTP downloads into a `.part` file, and checksums.

A transfer that breaks keeps what it received in FILE.part; the next attempt (in the same call, up
to `retries` times, or a later call) asks for the rest with an HTTP Range request and appends, or
starts again when the server ignores the range. The finished file is renamed from FILE.part to
FILE only after its checksum matched (data/fetch.py): a name without `.part` is a checked file.
"""

from __future__ import annotations

import http.client
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from ranklist.atomic import file_digest
from ranklist.data.sources import Archive, Digest
from ranklist.errors import UserError

CHUNK = 1 << 20
TIMEOUT_S = 60
MIRROR_ENV = "RANKLIST_MIRROR"


class DownloadError(UserError):
    """A transfer that could not be completed (what was received stays in the .part file)."""


class ChecksumError(UserError):
    """A file whose checksum is not the expected one."""


def archive_url(archive: Archive) -> str | None:
    """The official URL, or $RANKLIST_MIRROR/<file name> when a mirror is set (checksums unchanged)."""
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    return f"{mirror.rstrip('/')}/{archive.file}" if mirror else archive.url


def _offset(response, start: int) -> int:
    """Where the server's bytes begin: `start` for a 206 whose Content-Range says so, else 0."""
    if response.status != 206:
        return 0
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match and int(match.group(1)) == start else 0


def _attempt(url: str, part: Path, log: Callable[[str], None]) -> None:
    """One request for what `part` lacks; raises OSError / HTTPException when it breaks."""
    start = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(
        url, headers={"User-Agent": "ranklist", **({"Range": f"bytes={start}-"} if start else {})}
    )
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as error:
        if error.code == 416 and start:  # nothing past what we hold: the checksum decides
            return
        raise
    with response:
        offset = _offset(response, start)
        if start and offset != start:
            log(f"{url}: the server ignored the range request; starting again")
        expected = response.headers.get("Content-Length")
        received = 0
        with open(part, "ab" if offset else "wb") as handle:
            while chunk := response.read(CHUNK):
                handle.write(chunk)
                received += len(chunk)
        if expected is not None and received < int(expected):
            raise http.client.IncompleteRead(b"", int(expected) - received)


def download(url: str, part: Path, *, retries: int = 3, log: Callable[[str], None] = print) -> Path:
    """`url` into `part` (resuming what it holds), trying up to `retries` times; returns `part`."""
    part.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, retries + 1):
        try:
            _attempt(url, part, log)
            return part
        except (OSError, http.client.HTTPException) as error:
            held = part.stat().st_size if part.exists() else 0
            if isinstance(error, urllib.error.HTTPError) and error.code in (401, 403, 404, 410):
                raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from None
            log(
                f"{url}: transfer broke after {held:,} bytes ({type(error).__name__}: {error}); "
                f"attempt {attempt} of {retries}"
            )
    raise DownloadError(
        f"{url}: could not complete the download after {retries} attempts; {held:,} bytes are kept in {part} "
        f"and the same command resumes from there"
    )


def check_digest(path: Path, digest: Digest, name: str | None = None) -> None:
    """Raise ChecksumError naming the file (`name`, default the path's), the expected and the actual value."""
    algorithm = "sha256" if digest.algorithm == "sha256-prefix" else digest.algorithm
    actual = file_digest(path, algorithm)
    ok = (
        actual.startswith(digest.value.lower())
        if digest.algorithm == "sha256-prefix"
        else actual == digest.value.lower()
    )
    if not ok:
        raise ChecksumError(
            f"{name or path.name}: {digest.algorithm} is {actual}, expected {digest.value} ({digest.source}): "
            "damaged, truncated or not the published file"
        )
