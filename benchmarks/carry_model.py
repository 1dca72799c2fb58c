"""Bring an embedded model's GGUF to a machine without internet, in pieces small enough for a call.

    python benchmarks/carry_model.py split NAME [--dir .carry] [--mib N]    # where the packages are
    python benchmarks/carry_model.py join NAME [--dir .carry]               # on the GPU machine

`split` assembles the model's GGUF (ctxsynth.models, size and sha256 checked) and cuts it into
`DIR/NAME/piece-NNN` files of at most MIB MiB (default: what a call has left beside the
repository's tracked files, which travel with every call: the 64 MiB are for both) plus
`DIR/NAME/manifest.json` (every piece's size and sha256, the whole file's). Send the pieces one call at a time into the same ignored folder (`.carry/`
is in .gitignore; a warm machine keeps ignored files between calls). `join` checks each piece,
concatenates them into `<ctxsynth cache>/gguf/<gguf file>`, where ctxsynth.models looks first, and
checks the whole file against the registry's sha256; the first use then converts it as usual.
`join` needs neither the asset packages nor transformers. docs/gpu.md walks through it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from ctxsynth.errors import AssetMissing
from ctxsynth.models import cache_root, embedded, gguf_path, sha256_of

MANIFEST = "manifest.json"


CALL_MIB = 64  # what one device call carries: the tracked tree and the carried paths together


def default_mib(root: Path | None = None) -> int:
    """The largest whole MiB a piece may take beside the repository's tracked files (1 MiB spare)."""
    root = root or Path(__file__).resolve().parents[1]
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
    tracked = sum((root / name).stat().st_size for name in listed.decode().split("\0")
                  if name and (root / name).is_file())
    return max(1, CALL_MIB - 1 - -(-tracked // (1 << 20)))


def split(name: str, folder: Path, mib: int) -> Path:
    model = embedded(name)
    source = gguf_path(model.name)
    out = folder / model.name
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("piece-*"):
        old.unlink()
    pieces: list[dict[str, object]] = []
    size = mib << 20
    with source.open("rb") as f:
        while block := f.read(size):
            piece = out / f"piece-{len(pieces):03d}"
            piece.write_bytes(block)
            pieces.append({"file": piece.name, "size": len(block), "sha256": sha256_of(piece)})
    manifest = {"model": model.name, "gguf": model.gguf, "size": model.size, "sha256": model.sha256, "pieces": pieces}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return out


def join(name: str, folder: Path) -> Path:
    model = embedded(name)
    src = folder / model.name
    if not (src / MANIFEST).exists():
        raise AssetMissing(f"{src / MANIFEST} is missing: send the manifest along with the pieces")
    manifest = json.loads((src / MANIFEST).read_text(encoding="utf-8"))
    if manifest["sha256"] != model.sha256:
        raise AssetMissing(f"{src}: the pieces are of another file (sha256 {manifest['sha256'][:12]}...)")
    missing = [p["file"] for p in manifest["pieces"] if not (src / p["file"]).exists()]
    if missing:
        raise AssetMissing(f"{src}: {len(missing)} of {len(manifest['pieces'])} pieces not here yet: {', '.join(missing)}")
    for p in manifest["pieces"]:
        piece = src / p["file"]
        if piece.stat().st_size != p["size"] or sha256_of(piece) != p["sha256"]:
            raise AssetMissing(f"{piece}: damaged in transit (size or sha256 differ); send it again")
    target = cache_root() / "gguf" / model.gguf
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    with tmp.open("wb") as out:
        for p in manifest["pieces"]:
            out.write((src / p["file"]).read_bytes())
    tmp.rename(target)
    try:
        gguf_path(model.name)  # size and sha256 against the registry
    except AssetMissing:
        target.unlink()
        raise
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["split", "join"])
    parser.add_argument("name", help="an embedded model, e.g. gemma3-270m, qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--dir", type=Path, default=Path(".carry"))
    parser.add_argument("--mib", type=int, default=None,
                        help="largest piece in MiB (default: 64 MiB less the tracked files, which every call carries)")
    args = parser.parse_args(argv)
    if args.mib is None and args.command == "split":
        args.mib = default_mib()
    try:
        if args.command == "split":
            out = split(args.name, args.dir, args.mib)
            n = len(json.loads((out / MANIFEST).read_text())["pieces"])
            print(f"carry_model: {n} pieces -> {out}/ (send each piece-NNN with {MANIFEST})")
        else:
            print(f"carry_model: {join(args.name, args.dir)} (sha256 checked)")
    except Exception as exc:  # one line for the user, as the CLI does
        print(f"carry_model: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
