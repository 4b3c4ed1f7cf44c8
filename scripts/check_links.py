#!/usr/bin/env python3
"""Checks the relative links of the project's Markdown pages.

Every `[text](path)` and `[text](path#anchor)` link (images included) in
README.md, SECURITY.md, CONTRIBUTING.md, docs/*.md and the READMEs of
events/ and examples/*/ must resolve to a file
or directory of the repository; an `#anchor` into a Markdown page must name
one of its headings by its GitHub-style slug. Links to http(s) and mailto
addresses are skipped, and so is anything inside code (fenced blocks and
inline code spans).

usage: python3 scripts/check_links.py [ROOT]

Prints each broken link and exits 1; otherwise prints
"links: N checked, 0 broken" and exits 0. Standard library only.
"""
import os
import re
import sys
import unicodedata
from urllib.parse import unquote

PAGES = ["README.md", "SECURITY.md", "CONTRIBUTING.md", "events/README.md",
         "examples/protected-api/README.md"]
PAGE_DIRS = ["docs"]
SKIP_SCHEMES = ("http://", "https://", "mailto:")

FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
# [text](target) or ![alt](target), target optionally in <...>, optionally
# followed by a "title". Nested brackets one level deep in the text.
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^\s)]+)(?:\s+\"[^\"]*\"|\s+'[^']*')?\s*\)")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ANCHOR = re.compile(r"<a\s+[^>]*(?:name|id)=\"([^\"]+)\"", re.IGNORECASE)


def pages(root):
    found = [p for p in PAGES if os.path.isfile(os.path.join(root, p))]
    for d in PAGE_DIRS:
        full = os.path.join(root, d)
        if os.path.isdir(full):
            found += sorted(os.path.join(d, n) for n in os.listdir(full) if n.endswith(".md"))
    return found


def prose_lines(text):
    """The page's lines outside fenced code blocks, with their numbers."""
    fence = None
    for number, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if fence is None:
            if m:
                fence = m.group(1)
                continue
            yield number, line
        elif m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not line.strip()[len(m.group(1)):].strip():
            fence = None


def slug(heading):
    """GitHub's anchor for a heading: the text lower-cased, inline markup and
    punctuation dropped (hyphens and underscores kept), spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)   # links keep their text
    text = re.sub(r"<[^>]+>", "", text)                          # inline HTML
    text = text.strip().lower()
    kept = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in "-_" or ch == " " or cat[0] in ("L", "N") or cat == "Mn":
            kept.append(ch)
    return "".join(kept).replace(" ", "-")


def anchors(path, cache={}):
    if path not in cache:
        seen = {}
        result = set()
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for _, line in prose_lines(text):
            m = HEADING.match(line)
            if m:
                base = slug(m.group(2))
                n = seen.get(base, 0)
                seen[base] = n + 1
                result.add(base if n == 0 else f"{base}-{n}")
            for a in HTML_ANCHOR.findall(line):
                result.add(a)
        cache[path] = result
    return cache[path]


def check(root):
    checked, broken = 0, []
    for page in pages(root):
        page_path = os.path.join(root, page)
        with open(page_path, encoding="utf-8") as f:
            text = f.read()
        for number, line in prose_lines(text):
            for m in LINK.finditer(INLINE_CODE.sub("", line)):
                target = m.group(1)
                if target.startswith("<") and target.endswith(">"):
                    target = target[1:-1]
                if target.lower().startswith(SKIP_SCHEMES) or re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
                    continue
                checked += 1
                path_part, _, anchor = target.partition("#")
                path_part = unquote(path_part.split("?", 1)[0])
                if path_part:
                    dest = os.path.normpath(os.path.join(os.path.dirname(page_path), path_part))
                else:
                    dest = page_path
                where = f"{page}:{number}: {target}"
                if not os.path.exists(dest):
                    broken.append(f"{where} (no such file: {os.path.relpath(dest, root)})")
                    continue
                if anchor and dest.endswith(".md") and os.path.isfile(dest):
                    if unquote(anchor).lower() not in anchors(dest):
                        broken.append(f"{where} (no heading #{anchor} in {os.path.relpath(dest, root)})")
    return checked, broken


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
    checked, broken = check(root)
    for b in broken:
        print(b)
    print(f"links: {checked} checked, {len(broken)} broken")
    sys.exit(1 if broken else 0)


if __name__ == "__main__":
    main()
