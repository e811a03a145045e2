#!/usr/bin/env python3
"""Copies the Docker build context of this repository into a directory.

Usage: build_context.py REPO_ROOT TARGET_DIR

The context is what `docker build -f deploy/Dockerfile .` would send: the tree minus
`.dockerignore`, decided by the Docker SDK's own matcher (`docker.utils.build`), so the
CI build of the release binary sees exactly the files the image build sees. Files keep
their modification times, so a repeated run leaves cargo's fingerprints fresh.
"""
import os
import shutil
import sys

from docker.utils.build import exclude_paths


def main() -> int:
    root, target = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    with open(os.path.join(root, ".dockerignore"), encoding="utf-8") as f:
        patterns = [
            line.strip()
            for line in f
            if line.strip() and not line.lstrip().startswith("#")
        ]
    included = sorted(exclude_paths(root, patterns, dockerfile="deploy/Dockerfile"))
    if os.path.exists(target):
        shutil.rmtree(target)
    os.makedirs(target)
    files = 0
    for rel in included:
        src = os.path.join(root, rel)
        dst = os.path.join(target, rel)
        if os.path.isdir(src) and not os.path.islink(src):
            os.makedirs(dst, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(src, dst, follow_symlinks=False)
        files += 1
    print(f"build context: {files} files in {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
