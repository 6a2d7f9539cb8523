"""LibriSpeech splits from OpenSLR (resource 12), checksum-verified, for users with internet.

    asr-engines calibrate download test-clean --to data/

The archive is streamed to a temporary file, its sha256 checked against the published value, then
unpacked (member paths checked, nothing outside the target) and only then moved into place.
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path

BASE_URL = "https://www.openslr.org/resources/12/"
#: sha256 of each archive (the values torchaudio's LibriSpeech loader verifies).
SHA256 = {
    "dev-clean": "76f87d090650617fca0cac8f88b9416e0ebf80350acb97b343a85fa903728ab3",
    "dev-other": "12661c48e8c3fe1de2c1caa4c3e135193bfb1811584f11f569dd12645aa84365",
    "test-clean": "39fde525e59672dc6d1551919b1478f724438a95aa55f874b576be21967e6c23",
    "test-other": "d09c181bba5cf717b3dee7d4d592af11a3ee3a09e08ae025c5506f6ebe961c29",
    "train-clean-100": "d4ddd1d5a6ab303066f14971d768ee43278a5f2a0aa43dc716b0e64ecbbbf6e2",
}


class DownloadError(RuntimeError):
    """A download that failed or did not match its checksum."""


def download_librispeech(split: str, destination: str | Path, base_url: str = BASE_URL, progress: bool = True) -> Path:
    """Fetch and unpack `split` into `destination`; returns the folder holding its `*.trans.txt` files."""
    from tqdm import tqdm

    if split not in SHA256:
        raise DownloadError(f"unknown split {split!r}; choose from {', '.join(SHA256)}")
    destination = Path(destination)
    target = destination / "LibriSpeech" / split
    if target.is_dir():
        return target
    destination.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=destination, prefix=".download-") as scratch:
        archive = Path(scratch) / f"{split}.tar.gz"
        digest = hashlib.sha256()
        try:
            with urllib.request.urlopen(f"{base_url}{split}.tar.gz") as response, open(archive, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=split, disable=not progress) as bar:
                    for block in iter(lambda: response.read(1 << 20), b""):
                        out.write(block)
                        digest.update(block)
                        bar.update(len(block))
        except OSError as error:
            raise DownloadError(f"cannot download {split} from {base_url}: {error}") from None
        if digest.hexdigest() != SHA256[split]:
            raise DownloadError(f"{split}.tar.gz: sha256 {digest.hexdigest()} is not the published {SHA256[split]}")
        unpacked = Path(scratch) / "unpacked"
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                if member.issym() or member.islnk() or not (unpacked / member.name).resolve().is_relative_to(unpacked.resolve()):
                    raise DownloadError(f"{split}.tar.gz: refusing member {member.name!r}")
            tar.extractall(unpacked)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(unpacked / "LibriSpeech" / split), target)
    return target
