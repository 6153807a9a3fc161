#!/usr/bin/env python3
"""The import graph of src/: every `crate::…`, `super::…` and `self::…` path a file names, resolved to the
file that defines it. Fails when two files import each other (directly or in a longer circle) or when an
import runs against the layers (README, "Architecture"):

    main → cli → app → {pages, oauth, mcp, ops} → domain → store → {crypto, clock, config, limits, metrics}

A module may use its own submodules and anything in a lower layer; the faces (pages, oauth, mcp, ops) never
use each other. `--report` also prints the largest files and the functions longer than 80 lines.
"""
import os
import re
import sys
from collections import defaultdict

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
LAYERS = [
    ["main", "allocator"],
    ["cli"],
    ["app"],
    ["pages", "oauth", "mcp", "ops"],
    ["domain"],
    ["store"],
    ["crypto", "clock", "config", "limits", "metrics"],
]
RANK = {room: i for i, rooms in enumerate(LAYERS) for room in rooms}


def files():
    for root, _, names in os.walk(SRC):
        for name in names:
            if name.endswith(".rs"):
                yield os.path.relpath(os.path.join(root, name), SRC)


def module_of(path):
    """src-relative file → module path segments (lib.rs is the crate root)."""
    parts = path[:-3].split(os.sep)
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return parts


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def code_without_tests(text):
    """The file without its `#[cfg(test)] mod tests { … }` block (tests may reach anything)."""
    match = re.search(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text)
    return text[: match.start()] if match else text


def named_paths(text):
    """Every path that starts at crate, super or self, with `use` groups expanded."""
    out = []
    for use in re.finditer(r"\buse\s+([^;]+);", text):
        out.extend(expand(use.group(1).replace(" ", "").replace("\n", "")))
    for path in re.finditer(r"\b((?:crate|super|self)(?:::\w+)+)", text):
        out.append(path.group(1))
    return [p for p in out if p.split("::")[0] in ("crate", "super", "self")]


def expand(tree):
    """`a::{b, c::{d, e}}` → a::b, a::c::d, a::c::e."""
    brace = tree.find("{")
    if brace < 0:
        return [tree.split("as")[0] if "::" in tree else tree]
    prefix, inner = tree[:brace], tree[brace + 1 : tree.rfind("}")]
    parts, depth, start = [], 0, 0
    for i, c in enumerate(inner):
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(inner[start:i])
            start = i + 1
    parts.append(inner[start:])
    return [p for part in parts if part for p in expand(prefix + part)]


def resolve(path, here, modules):
    """The module (as a tuple) a path names: its longest prefix that is a file of ours."""
    segments = path.split("::")
    if segments[0] == "crate":
        base, rest = [], segments[1:]
    else:
        base = list(here)
        rest = segments
        while rest and rest[0] in ("super", "self"):
            if rest[0] == "super":
                base = base[:-1]
            rest = rest[1:]
    full = base + rest
    for n in range(len(full), -1, -1):
        if tuple(full[:n]) in modules:
            return tuple(full[:n])
    return None


def room(module):
    return module[0] if module else "lib"


def main():
    report = "--report" in sys.argv
    modules = {}
    for path in files():
        modules[tuple(module_of(path))] = path
    edges = defaultdict(set)
    for module, path in modules.items():
        text = code_without_tests(strip_comments(open(os.path.join(SRC, path)).read()))
        for named in named_paths(text):
            target = resolve(named, module, modules)
            # The crate root holds only the module list (and `#[macro_export]` macros land there).
            if target is None or target == module or target == ():
                continue
            # A module using its own submodules (a parent file and its children form one room).
            if target[: len(module)] == module:
                continue
            edges[module].add(target)
    upward = []
    for source, targets in edges.items():
        for target in targets:
            a, b = room(source), room(target)
            if a == b or a == "lib":
                continue
            if a not in RANK or b not in RANK:
                upward.append((source, target, "a room outside the layer table"))
            elif RANK[b] <= RANK[a]:
                upward.append((source, target, "same layer" if RANK[a] == RANK[b] else "runs back up"))
    cycles = strongly_connected(edges, modules)
    for source, target, why in sorted(upward):
        print(f"layer: {modules[source]} -> {modules[target]} ({why})")
    for cycle in cycles:
        print("cycle: " + " -> ".join(sorted(modules[m] for m in cycle)))
    print(f"{len(modules)} files, {sum(len(t) for t in edges.values())} imports, "
          f"{len(cycles)} cycles, {len(upward)} imports against the layers")
    if report:
        print_report(modules)
    return 1 if cycles or upward else 0


def strongly_connected(edges, modules):
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    sys.setrecursionlimit(10000)
    for v in modules:
        if v not in index:
            visit(v)
    return found


def print_report(modules):
    sizes = sorted(((sum(1 for _ in open(os.path.join(SRC, p))), p) for p in modules.values()), reverse=True)
    print("largest files: " + ", ".join(f"{p} {n}" for n, p in sizes[:8]))
    long = []
    for path in modules.values():
        lines = open(os.path.join(SRC, path)).read().split("\n")
        for i, line in enumerate(lines):
            if re.match(r"\s*(pub(\([^)]*\))?\s+)?(async\s+)?fn\s+\w+", line):
                depth, started, end = 0, False, i
                for j in range(i, len(lines)):
                    depth += lines[j].count("{") - lines[j].count("}")
                    started = started or "{" in lines[j]
                    if started and depth <= 0:
                        end = j
                        break
                    if not started and lines[j].rstrip().endswith(";"):
                        break
                if end - i + 1 > 80:
                    name = re.search(r"fn\s+(\w+)", line).group(1)
                    long.append(f"{path}:{name} ({end - i + 1})")
    print(f"functions over 80 lines: {len(long)}" + (": " + ", ".join(long) if long else ""))


if __name__ == "__main__":
    sys.exit(main())
