"""scripts/k8s.sh takes its deb-src entry from the machine's own Debian sources (its mirror, suites
and keyring), not a fixed deb.debian.org: `deb_src_stanzas` on sample configurations, and apt
itself reading what it wrote. Nothing is built or installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"

DEB822 = f"""\
Types: deb
# a snapshot comment
URIs: http://mirror.example.org/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: {KEYRING}

Types: deb
URIs: http://mirror.example.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: {KEYRING}

Types: deb
URIs: http://mirror.example.org/debian
Suites: bookworm-backports
Components: main
Enabled: no
Signed-By: {KEYRING}
"""

THIRD_PARTY = """\
Types: deb
URIs: https://download.docker.com/linux/debian
Suites: bookworm
Components: stable
Signed-By: /etc/apt/keyrings/docker.gpg

Types: deb
URIs: https://deb.nodesource.com/node_20.x
Suites: nodistro
Components: main
"""

INLINE_KEY = """\
Types: deb
URIs: http://local.example/debian
Suites: bookworm
Components: main
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mQINBGRsample
 -----END PGP PUBLIC KEY BLOCK-----
"""

ONE_LINE = f"""\
# the machine's mirror, one-line format
deb [arch=amd64 signed-by={KEYRING}] http://ftp.example.net/debian bookworm main non-free-firmware
deb http://ftp.example.net/debian bookworm-updates main  # trailing comment
deb-src http://ftp.example.net/debian bookworm main
deb [ signed-by=/etc/apt/keyrings/other.gpg ] http://other.example/debian bookworm main
deb http://ftp.example.net/debian bullseye main
"""


def stanzas(apt_dir: Path, codename: str = "bookworm") -> str:
    proc = subprocess.run(
        ["bash", "-c", 'source "$1"; deb_src_stanzas "$2" "$3"', "_",
         str(ROOT / "scripts" / "k8s.sh"), str(apt_dir), codename],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def apt_dir(tmp_path: Path, sources: dict[str, str], sources_list: str | None = None) -> Path:
    d = tmp_path / "apt"
    (d / "sources.list.d").mkdir(parents=True)
    for name, text in sources.items():
        (d / "sources.list.d" / name).write_text(text)
    if sources_list is not None:
        (d / "sources.list").write_text(sources_list)
    return d


def test_deb822_sources_give_the_same_mirror_suites_and_keyring(tmp_path: Path) -> None:
    d = apt_dir(tmp_path, {"debian.sources": DEB822, "third.sources": THIRD_PARTY,
                           "old.list.disabled": ONE_LINE})  # fmt: skip
    assert stanzas(d) == (
        "Types: deb-src\nURIs: http://mirror.example.org/debian\nSuites: bookworm bookworm-updates\n"
        f"Components: main contrib\nSigned-By: {KEYRING}\n\n"
        "Types: deb-src\nURIs: http://mirror.example.org/debian-security\nSuites: bookworm-security\n"
        f"Components: main\nSigned-By: {KEYRING}\n\n"
    )


def test_one_line_sources_list_and_an_inline_key(tmp_path: Path) -> None:
    d = apt_dir(tmp_path, {"local.sources": INLINE_KEY}, ONE_LINE)
    assert stanzas(d) == (
        "Types: deb-src\nURIs: http://local.example/debian\nSuites: bookworm\nComponents: main\n"
        "Signed-By: \n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n mQINBGRsample\n"
        " -----END PGP PUBLIC KEY BLOCK-----\n\n"
        "Types: deb-src\nURIs: http://ftp.example.net/debian\nSuites: bookworm\n"
        f"Components: main non-free-firmware\nSigned-By: {KEYRING}\n\n"
        "Types: deb-src\nURIs: http://ftp.example.net/debian\nSuites: bookworm-updates\n"
        "Components: main\n\n"
    )


def test_no_debian_source_gives_nothing(tmp_path: Path) -> None:
    assert stanzas(apt_dir(tmp_path, {"third.sources": THIRD_PARTY})) == ""
    assert stanzas(apt_dir(tmp_path / "other", {"debian.sources": DEB822}), "trixie") == ""


@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get")
def test_apt_reads_the_entry_as_the_mirrors_source_indexes(tmp_path: Path) -> None:
    parts = tmp_path / "parts"
    parts.mkdir()
    src = stanzas(apt_dir(tmp_path, {"debian.sources": DEB822}))
    (parts / "chaoslab-deb-src.sources").write_text(src)
    proc = subprocess.run(
        ["apt-get", f"-oDir::Etc::SourceParts={parts}", "-oDir::Etc::SourceList=/dev/null",
         f"-oDir::State::Lists={tmp_path / 'lists'}", "--print-uris", "update"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    uris = {line.split("'")[1] for line in proc.stdout.splitlines() if line.startswith("'")}
    for suite in ("bookworm", "bookworm-updates"):
        assert f"http://mirror.example.org/debian/dists/{suite}/contrib/source/Sources.xz" in uris
    assert (
        "http://mirror.example.org/debian-security/dists/bookworm-security/main/source/Sources.xz"
        in uris
    )
    assert not any("deb.debian.org" in u or "binary-" in u for u in uris), uris
