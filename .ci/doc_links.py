#!/usr/bin/env python3
"""Fails when a relative link in the repository's Markdown does not resolve: a file that
does not exist, or a #fragment that names no heading of its target (GitHub's slugs).
Usage: python3 .ci/doc_links.py [FILE.md ...] (default: every tracked *.md file)."""
import os
import re
import subprocess
import sys

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~)")


def slug(heading):
    text = re.sub(r"`", "", heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def lines_outside_code(path):
    inside = False
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if FENCE.match(line.strip()):
                inside = not inside
                continue
            if not inside:
                yield n, line


def anchors(path):
    seen = {}
    out = set()
    for _, line in lines_outside_code(path):
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            s = slug(m.group(1))
            k = seen.get(s, 0)
            out.add(s if k == 0 else f"{s}-{k}")
            seen[s] = k + 1
    return out


def main(files):
    if not files:
        files = subprocess.run(["git", "ls-files", "*.md"], capture_output=True, text=True,
                               check=True).stdout.split()
    broken = []
    for md in files:
        for n, line in lines_outside_code(md):
            for target in LINK.findall(line):
                if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                    continue  # http:, https:, mailto:
                path, _, fragment = target.partition("#")
                dest = os.path.normpath(os.path.join(os.path.dirname(md), path)) if path else md
                if not os.path.exists(dest):
                    broken.append(f"{md}:{n}: {target}: no such file")
                elif fragment and dest.endswith(".md") and fragment not in anchors(dest):
                    broken.append(f"{md}:{n}: {target}: no heading #{fragment} in {dest}")
    for b in broken:
        print(b, file=sys.stderr)
    print(f"doc links: {len(files)} files, {len(broken)} broken")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
