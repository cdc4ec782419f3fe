"""The corpus of ``cgstudio eval repo``: small pure-Python packages pinned to exact sdists on PyPI.

``CORPUS`` is the manifest: name, version, the sdist's URL and its sha256. The packages were
released after the demo model's training data was gathered (late 2024) and are not among the most
popular ones, to limit memorisation. ``fetch`` downloads a sdist into the user cache
(``$CGSTUDIO_HOME/eval-repo``, else ``$XDG_CACHE_HOME/cgstudio/eval-repo``, else
``~/.cache/cgstudio/eval-repo``), checks its sha256 before anything is unpacked, and unpacks it
with ``safe_extract``: only regular files and folders, no absolute or ``..`` member names, no
links or devices, and caps on the member count and sizes. The package's code is read as text
and never imported or run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import httpx

from cgstudio.core.errors import CGStudioError, UsageError

MAX_MEMBERS = 2000
MAX_MEMBER_BYTES = 4 << 20
MAX_TOTAL_BYTES = 64 << 20
MAX_SDIST_BYTES = 16 << 20


class CorpusError(CGStudioError):
    """The corpus could not be fetched or does not match its manifest (CLI exit 1)."""

    code = "eval_corpus_error"


@dataclass(frozen=True)
class Sdist:
    """One pinned source distribution."""

    name: str
    version: str
    url: str
    sha256: str
    uploaded: str  # the day PyPI received it

    @property
    def key(self) -> str:
        return f"{self.name}-{self.version}"


_FILES = "https://files.pythonhosted.org/packages"
CORPUS: tuple[Sdist, ...] = (
    Sdist(
        "dacite",
        "1.9.2",
        f"{_FILES}/55/a0/7ca79796e799a3e782045d29bf052b5cde7439a2bbb17f15ff44f7aacc63/dacite-1.9.2.tar.gz",
        "6ccc3b299727c7aa17582f0021f6ae14d5de47c7227932c47fec4cdfefd26f09",
        "2025-02-05",
    ),
    Sdist(
        "tinydb",
        "4.9.0",
        f"{_FILES}/01/e9/d30dd8b1b88a75ec3e464eb81feee514ccf97f50bd306d198959e6733210/tinydb-4.9.0.tar.gz",
        "6928b1fa785186bda7952a0ba05aaeedc883ede565ca9c7d608de44e5e75de70",
        "2026-08-06",
    ),
    Sdist(
        "cron-descriptor",
        "2.2.1",
        f"{_FILES}/41/6b/9ebac1857c0e90d5ba487090f4f9b23e8bf9adead62922550621de21cbf2/"
        "cron_descriptor-2.2.1.tar.gz",
        "6759056f43b3cabca274b5df182bb63571f2f383bdd4d9d3ff4662c527430a65",
        "2026-10-13",
    ),
    Sdist(
        "dirty-equals",
        "0.11",
        f"{_FILES}/30/1d/c5913ac9d6615515a00f4bdc71356d302437cb74ff2e9aaccd3c14493b78/dirty_equals-0.11.tar.gz",
        "f4ac74ee88f2d11e2fa0f65eb30ee4f07105c5f86f4dc92b09eb1138775027c3",
        "2025-11-17",
    ),
    Sdist(
        "asyncstdlib",
        "3.14.0",
        f"{_FILES}/3a/66/7b76f2b48afc5c8b4648500a4ff9869f83528e3d601a19de51da18b5e8a5/asyncstdlib-3.14.0.tar.gz",
        "f99396992a3bba7495d8cf6c832bfe8c8727f61213233d3569a5a9cbd1c04385",
        "2026-03-20",
    ),
    Sdist(
        "svcs",
        "26.2.0",
        f"{_FILES}/9b/5e/89463bf7613fe723801b8f7000f37c4c36486adcda0d115ca417e513c7cc/svcs-26.2.0.tar.gz",
        "129efb89586c2c52295ee00b00562af7d85d5535dad149534993e25fccbd76a6",
        "2026-08-24",
    ),
)

# Packages picked because their own tests run offline from the sdist (every test file passes there
# with pytest and the stdlib only) and many tasks fall in implementation files that those tests
# cover: the pass@1 set (``--corpus-set tested``). Released 2026, before none of it was seen by
# the demo model; sqlparse is the most used of them.
TESTED: tuple[Sdist, ...] = (
    Sdist(
        "sqlparse",
        "0.6.1",
        f"{_FILES}/7e/e0/361c764ea58cc1a75f7b4b424a74b08449db8bfa5e9199c7275999fdd1b9/sqlparse-0.6.1.tar.gz",
        "ca722573f848ff2d30e40ea30f53a104b7dea7635ea9285891263eb2c58fb6e7",
        "2026-11-01",
    ),
    Sdist(
        "marko",
        "2.2.4",
        f"{_FILES}/82/6d/671a18bb386adca6311bca6c2fe6bec873947ee501cc5f8f509ec06bdde0/marko-2.2.4.tar.gz",
        "c042c66f835425673123d7536b39b4660de3b68e30078c70fd26245b31170683",
        "2026-08-12",
    ),
    Sdist(
        "parso",
        "0.8.7",
        f"{_FILES}/30/4b/90c937815137d43ce71ba043cd3566221e9df6b9c805f24b5d138c9d40a7/parso-0.8.7.tar.gz",
        "eaaac4c9fdd5e9e8852dc778d2d7405897ec510f2a298071453e5e3a07914bb1",
        "2026-05-01",
    ),
)
CORPUS_SETS = {"crossfile": CORPUS, "tested": TESTED}


def default_corpus_dir() -> Path:
    if home := os.environ.get("CGSTUDIO_HOME"):
        return Path(home) / "eval-repo"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cgstudio" / "eval-repo"


def fetch(sdist: Sdist, cache: Path | None = None, *, timeout_s: float = 60.0) -> Path:
    """The unpacked source tree of ``sdist`` (its top folder), downloading and checking it first
    when the cache does not hold it yet."""
    cache = cache or default_corpus_dir()
    tree = cache / "src" / sdist.key
    if (tree / ".complete").is_file():
        return _top(tree)
    archive = cache / "sdist" / PurePosixPath(sdist.url).name
    if not archive.is_file() or _sha256(archive) != sdist.sha256:
        _download(sdist, archive, timeout_s)
    if tree.exists():
        shutil.rmtree(tree)
    safe_extract(archive, tree)
    (tree / ".complete").write_text(sdist.sha256 + "\n", encoding="utf-8")
    return _top(tree)


def _top(tree: Path) -> Path:
    subs = [p for p in tree.iterdir() if p.is_dir()]
    return subs[0] if len(subs) == 1 else tree


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(sdist: Sdist, archive: Path, timeout_s: float) -> None:
    archive.parent.mkdir(parents=True, exist_ok=True)
    part = archive.with_name(archive.name + ".part")
    try:
        with httpx.stream("GET", sdist.url, timeout=timeout_s, follow_redirects=True) as resp:
            if resp.status_code != 200:
                raise CorpusError(f"PyPI answered HTTP {resp.status_code} for {sdist.url}; try again later")
            size = 0
            with open(part, "wb") as fh:
                for block in resp.iter_bytes():
                    size += len(block)
                    if size > MAX_SDIST_BYTES:
                        raise CorpusError(f"{sdist.url} is larger than {MAX_SDIST_BYTES >> 20} MiB")
                    fh.write(block)
    except httpx.HTTPError as exc:
        part.unlink(missing_ok=True)
        raise CorpusError(
            f"cannot download {sdist.key} from PyPI ({type(exc).__name__}: {exc}); the corpus needs "
            "the network once, then lives in the cache. Run again when online, or pass --package DIR "
            "to evaluate on a local source tree."
        ) from exc
    got = _sha256(part)
    if got != sdist.sha256:
        part.unlink(missing_ok=True)
        raise CorpusError(
            f"{sdist.url} has sha256 {got[:16]}…, the manifest pins {sdist.sha256[:16]}…; nothing "
            "was unpacked. The file on PyPI changed or the download was tampered with."
        )
    part.replace(archive)


def safe_extract(archive: Path, dest: Path) -> None:
    """Unpack a .tar.gz into ``dest``: regular files and folders only, every name relative and
    free of ``..``, within ``MAX_MEMBERS`` members, ``MAX_MEMBER_BYTES`` each and
    ``MAX_TOTAL_BYTES`` in all. Anything else refuses the whole archive before a byte is written."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            _check_members(archive, members)
            dest.mkdir(parents=True, exist_ok=True)
            for m in members:
                target = dest.joinpath(*PurePosixPath(m.name).parts)
                if m.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(m)
                assert src is not None  # a regular file, checked above
                with src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise CorpusError(f"cannot unpack {archive.name}: {exc}; delete it to download it again") from exc


def _check_members(archive: Path, members: list[tarfile.TarInfo]) -> None:
    if len(members) > MAX_MEMBERS:
        raise CorpusError(f"{archive.name} has {len(members)} members, over the cap of {MAX_MEMBERS}")
    total = 0
    for m in members:
        name = PurePosixPath(m.name)
        if name.is_absolute() or ".." in name.parts or "\\" in m.name or not m.name.strip("/."):
            raise CorpusError(f"{archive.name}: member {m.name!r} would land outside the folder")
        if not (m.isfile() or m.isdir()):
            raise CorpusError(f"{archive.name}: member {m.name!r} is a link or device; refused")
        if m.size > MAX_MEMBER_BYTES:
            raise CorpusError(f"{archive.name}: member {m.name!r} is over {MAX_MEMBER_BYTES >> 20} MiB")
        total += m.size
    if total > MAX_TOTAL_BYTES:
        raise CorpusError(f"{archive.name} unpacks to over {MAX_TOTAL_BYTES >> 20} MiB")


def select(names: tuple[str, ...], corpus_set: str = "crossfile") -> tuple[Sdist, ...]:
    """The entries named, from either set (``corpus_set``'s all when ``names`` is empty); a clear
    error for unknown names."""
    if not names:
        return CORPUS_SETS[corpus_set]
    known = {s.name: s for s in CORPUS + TESTED}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(f"not in the corpus: {', '.join(unknown)}; choose from {', '.join(known)}")
    return tuple(known[n] for n in names)
