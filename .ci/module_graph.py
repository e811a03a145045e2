#!/usr/bin/env python3
"""The import graph between the crate's top-level modules, and its cycles.

Reads every `src/**/*.rs`, attributes each file to its top-level module (`src/foo.rs`
and `src/foo/**` are `foo`), and collects the modules it names as `crate::<module>`
(in `use` trees such as `use crate::{a, b::c}` too). Comments are skipped.

Fails (exit 1) on a cycle between features, printing it: features form layers, and a
feature that imports another one (portfolio -> integrations) must not be imported back
(integrations -> portfolio), or neither can be understood, tested or changed alone.
Domain events (`events`) exist for the upward direction: portfolio publishes, and
integrations subscribes without portfolio knowing.

`app` is left out: it is the composition root that wires every feature (and holds
`AppState`, which features read). Platform modules (below the features: database,
errors, context, ...) may be imported by every feature; a platform
module's import of a feature (an upward import) is printed as a warning.

Usage: python3 .ci/module_graph.py [src_dir] [--dot]
"""

import os
import re
import sys

# Below the features: every feature may use these.
PLATFORM = {
    "audit", "clock", "config", "context", "cors", "db", "error", "events", "http", "idempotency",
    "ids", "mail", "outbox", "principal", "render", "schema", "secrets", "service_key", "storage",
    "telemetry",
}
# The composition root (see above).
ROOT = {"app", "lib", "lib_tests", "main"}


def top_level_modules(src):
    lib = open(os.path.join(src, "lib.rs"), encoding="utf-8").read()
    return set(re.findall(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", lib, re.M))


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    out = []
    for line in text.splitlines():
        # A `//` inside a string ("https://...") cuts the rest of that line: nothing of
        # interest follows a URL on one line in practice.
        i = line.find("//")
        out.append(line if i < 0 else line[:i])
    return "\n".join(out)


def split_top_level(tree):
    """`a, b::{c, d}, e` -> ["a", "b::{c, d}", "e"]."""
    items, depth, cur = [], 0, ""
    for ch in tree:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    items.append(cur)
    return [i.strip() for i in items if i.strip()]


def named_modules(code):
    names = set()
    for m in re.finditer(r"(?<![\w$])crate::(\w+|\{)", code):
        if m.group(1) != "{":
            names.add(m.group(1))
            continue
        start = m.end()
        depth, j = 1, start
        while j < len(code) and depth:
            depth += {"{": 1, "}": -1}.get(code[j], 0)
            j += 1
        for item in split_top_level(code[start:j - 1]):
            head = re.match(r"\w+", item)
            if head:
                names.add(head.group(0))
    return names


def graph(src):
    modules = top_level_modules(src)
    edges = {m: set() for m in modules}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            path = os.path.join(root, f)
            rel = os.path.relpath(path, src).split(os.sep)
            owner = rel[0][:-3] if len(rel) == 1 else rel[0]
            if owner not in modules:
                continue
            code = strip_comments(open(path, encoding="utf-8").read())
            for target in named_modules(code) & modules:
                if target != owner:
                    edges[owner].add(target)
    return edges


def strongly_connected(edges):
    """Tarjan's algorithm; components of more than one module."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def a_cycle(edges, comp):
    """One concrete cycle inside a strongly connected component, as a path."""
    members = set(comp)
    start = comp[0]
    prev, queue = {start: None}, [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(edges[v] & members):
            if w == start:
                path = [v]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                path.reverse()
                return path + [start]
            if w not in prev:
                prev[w] = v
                queue.append(w)
    return comp


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    src = args[0] if args else os.path.join(os.path.dirname(__file__), "..", "src")
    edges = graph(src)
    for r in ROOT:
        edges.pop(r, None)
    for v in edges:
        edges[v] -= ROOT
    if "--dot" in sys.argv:
        print("digraph modules {")
        for v in sorted(edges):
            for w in sorted(edges[v]):
                print(f'  "{v}" -> "{w}";')
        print("}")
    failed = False
    # Cycles between features: on the features' own imports. A feature reaching another
    # only through a platform module is the platform's upward import, reported below.
    features = {v: {w for w in e if w not in PLATFORM} for v, e in edges.items()
                if v not in PLATFORM}
    for comp in strongly_connected(features):
        print(f"module cycle between features: {' -> '.join(a_cycle(features, comp))} "
              f"(all of {', '.join(comp)} reach each other)")
        failed = True
    for v in sorted(PLATFORM & set(edges)):
        up = sorted(w for w in edges[v] if w not in PLATFORM)
        if up:
            print(f"warning: platform module {v} imports the features {', '.join(up)}")
    if failed:
        print("module_graph: features import each other in a cycle; break it (move the "
              "shared part down, or publish a domain event)", file=sys.stderr)
        return 1
    print(f"module_graph: {sum(len(e) for e in edges.values())} imports between "
          f"{len(edges)} modules, no cycle between features")
    return 0


if __name__ == "__main__":
    sys.exit(main())
