"""`ranklist data fetch NAME --root DIR`: download, verify, extract safely, check, then put in place.

    fetch("cub200", "data")          # -> data/CUB_200_2011, what configs/cub200.yaml reads
    fetch("bn_inception", "weights", check_weights=check_weights)  # -> weights/bn_inception-239d2248.pth

Each archive lands in ROOT/downloads/<file> (resumable through <file>.part, data/download.py) and
is kept there; one whose checksum (data/sources.py) does not match is removed and refused, naming
the checksum. A dataset is extracted (data/extract.py) into a temporary folder beside its target,
converted where its source has another layout, and read with its reader, which must find the
published counts of every split and every listed image; only then is it renamed to ROOT/<target>.
A failure at any point removes the temporary folder: nothing half-extracted is left. An existing
target is never replaced. ROOT/<target>.fetched.json records what was fetched and how it was checked.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ranklist.atomic import atomic_write_text, file_digest
from ranklist.data.download import ChecksumError, archive_url, check_digest, download
from ranklist.data.extract import extract
from ranklist.data.sources import SOURCES, Archive, Digest, Source
from ranklist.errors import UserError

# Loads a weights file into the named backbone, refusing one that does not fit; what it counted ({"tensors": n}).
WeightsCheck = Callable[[str, Path], dict[str, int]]
USER_DIGEST = "given on the command line (--sha256)"


def _digest_for(archive: Archive, sha256: dict[str, str], unverified: bool, path: Path) -> Digest | None:
    """The checksum to hold `path` to: --sha256 first, then the registry's; None only with --unverified."""
    if archive.file in sha256:
        return Digest("sha256", sha256[archive.file].lower(), USER_DIGEST)
    if archive.digest is not None:
        return archive.digest
    if unverified:
        return None
    actual = file_digest(path, "sha256")
    raise ChecksumError(
        f"{archive.file}: no checksum is published or recorded for it; its SHA-256 is {actual}. Compare it with a copy "
        f"you trust and rerun with --sha256 {archive.file}={actual}, or accept it unchecked with --unverified"
    )


def _obtain(archive: Archive, downloads: Path, source: Source, log: Callable[[str], None]) -> Path:
    """ROOT/downloads/<file>: already there (a checked download, or dropped in by hand), or downloaded
    to <file>.part."""
    path = downloads / archive.file
    if path.is_file():
        return path
    url = archive_url(archive)
    if url is None:
        raise FileNotFoundError(f"{path} is missing. {(source.manual or '').replace('ROOT/', f'{downloads.parent}/')}")
    log(f"downloading {url}")
    return download(url, path.with_name(path.name + ".part"), log=log)


def _verified(archive: Archive, path: Path, sha256: dict[str, str], unverified: bool) -> dict[str, Any]:
    """Check `path`, rename a .part to its name once it matched; the record of what was checked."""
    digest = _digest_for(archive, sha256, unverified, path)
    if digest is not None:
        try:
            check_digest(path, digest, archive.file)
        except ChecksumError as error:
            if not path.name.endswith(".part"):
                raise ChecksumError(f"{error}; {path} is left as it is and not used") from None
            path.unlink()  # a wrong download is never resumed nor mistaken for a checked one
            raise ChecksumError(f"{error}; the download was removed (the next fetch starts again)") from None
    final = path.with_name(archive.file)
    if path != final:
        path.replace(final)
    return {
        "file": archive.file,
        "url": archive_url(archive),
        "sha256": file_digest(final, "sha256"),
        "checked": None
        if digest is None
        else {"algorithm": digest.algorithm, "value": digest.value, "source": digest.source},
        "verified": digest is not None,
    }


def _check_dataset(name: str, folder: Path) -> dict[str, int]:
    """Every published split read with its reader at the published counts; {split: images}."""
    from ranklist.data.benchmarks import LISTINGS, PUBLISHED, read_benchmark

    counts = {}
    for split in PUBLISHED[name]:
        if split in LISTINGS[name][1]:
            counts[split] = len(read_benchmark(name, folder, split))
    return counts


def _place_dataset(
    source: Source, name: str, files: list[Path], target: Path, log: Callable[[str], None]
) -> dict[str, int]:
    """Extract, convert and check in a temporary folder beside `target`, then rename it into place."""
    from ranklist.data.conversions import CONVERSIONS

    work = Path(tempfile.mkdtemp(prefix=f".fetch-{name}-", dir=target.parent))
    try:
        for path in files:
            log(f"extracting {path.name}")
            extract(path, work)
        folder = work / source.inner if source.inner else work
        if not folder.is_dir():
            raise UserError(
                f"{name}: the archives hold no folder {source.inner!r} "
                f"(found: {sorted(p.name for p in work.iterdir())[:8]})"
            )
        if source.convert:
            CONVERSIONS[source.convert](folder)
        counts = _check_dataset(source.dataset, folder)
        folder.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return counts


def fetch(
    name: str,
    root: str | Path | None = None,
    *,
    sha256: dict[str, str] | None = None,
    unverified: bool = False,
    sources: dict[str, Source] = SOURCES,
    check_weights: WeightsCheck | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Fetch source `name` of `sources` into `root` (default: the source's, e.g. data/); returns its path.

    sha256: {archive file name: hex} checked instead of the registry's digest (required for an
    archive without one, unless unverified=True). `sources` is the test hook for fixture checksums.
    check_weights: how a weights source is checked by loading it into its backbone (the caller passes
    models.backbones.check_weights, so that data does not import models); needed for weights only."""
    if name not in sources:
        raise ValueError(f"unknown source {name!r}; choose one of {sorted(sources)}")
    source, sha256 = sources[name], dict(sha256 or {})
    if source.backbone is not None and check_weights is None:
        raise ValueError(f"{name} is a weights file: fetch checks it by loading it and needs check_weights")
    unknown = sorted(set(sha256) - {a.file for a in source.archives})
    if unknown:
        raise ValueError(
            f"--sha256 names {unknown}, which {name} does not have; its files: {[a.file for a in source.archives]}"
        )
    root = Path(root if root is not None else source.default_root)
    target = root / source.target
    if target.exists():
        log(f"{target} already exists: left as it is (move it away to fetch again)")
        return target
    root.mkdir(parents=True, exist_ok=True)
    downloads = root / "downloads"
    records = [_verified(a, _obtain(a, downloads, source, log), sha256, unverified) for a in source.archives]
    files = [downloads / a.file for a in source.archives]
    if source.backbone is not None:  # weights: checked by loading them, then copied into place
        counts = check_weights(source.backbone, files[0])
        shutil.copyfile(files[0], target.with_name(target.name + ".part"))
        target.with_name(target.name + ".part").replace(target)
    else:
        counts = _place_dataset(source, name, files, target, log)
    atomic_write_text(
        root / f"{source.target}.fetched.json",
        json.dumps(
            {"source": name, "path": str(target), "archives": records, "counts": counts, "note": source.note}, indent=2
        ),
    )
    unchecked = [r["file"] for r in records if not r["verified"]]
    log(
        f"{name}: {target} ready ({', '.join(f'{k} {v:,}' for k, v in counts.items())})"
        + (f"; UNVERIFIED (no checksum checked): {', '.join(unchecked)}" if unchecked else "")
    )
    return target


def with_digest(sources: dict[str, Source], name: str, digests: dict[str, Digest | None]) -> dict[str, Source]:
    """A copy of `sources` whose source `name` holds other digests ({file: Digest}): the tests' hook
    for fixture archives (the real registry is never changed)."""
    source = sources[name]
    archives = tuple(replace(a, digest=digests.get(a.file, a.digest)) for a in source.archives)
    return {**sources, name: replace(source, archives=archives)}
