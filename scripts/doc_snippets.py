"""Writes each template the docs show after a `<!-- cfn-lint: NAME -->`
marker to DIR/NAME and prints the paths, so `make test` lints the very
YAML a reader copies."""
import pathlib
import re
import sys

MARKER = re.compile(r"<!-- cfn-lint: ([\w.-]+) -->\n```yaml\n(.*?)```", re.S)


def main(out):
    root = pathlib.Path(__file__).resolve().parent.parent
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    found = 0
    for doc in sorted((root / "docs").glob("*.md")):
        for name, body in MARKER.findall(doc.read_text()):
            (out / name).write_text(body)
            print(out / name)
            found += 1
    if not found:
        sys.exit("no cfn-lint snippet found in docs/")


if __name__ == "__main__":
    main(sys.argv[1])
