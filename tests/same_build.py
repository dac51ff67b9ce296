"""`make demo` and `make test` must build every dependency once, with the same features.

`make demo` builds only the `tally` binary; `make test` builds the whole workspace with its test
dependencies (the Lambda crates), and Cargo unifies features over what it builds. Any feature that only
the test build turns on makes Cargo compile that crate, and everything above it, a second time: on a
newcomer's first run that was most of the dependency tree (minutes on 2 cores). Cargo.toml names those
features on tally's own dependencies; this check fails, naming them, when a dependency change brings
one back.
"""

import subprocess
import sys


def features(*args: str) -> dict[str, set[str]]:
    out = subprocess.run(
        ["cargo", "tree", "--prefix", "none", "-f", "{p}|{f}", "--target", "all", *args],
        capture_output=True, text=True, check=True,
    ).stdout
    seen: dict[str, set[str]] = {}
    for line in out.splitlines():
        if "|" not in line:
            continue
        package, names = line.replace(" (*)", "").split("|", 1)
        if "(/" in package:  # a workspace crate: built per target anyway
            continue
        seen.setdefault(package, set()).update(n for n in names.split(",") if n)
    return seen


demo = features("-p", "tally", "-e", "normal,build")
test = features("--workspace", "-e", "normal,build,dev")
extra = {p: sorted(test[p] - demo[p]) for p in demo if p in test and test[p] - demo[p]}
if extra:
    for package, names in sorted(extra.items()):
        print(f"{package}: only the test build enables {', '.join(names)}", file=sys.stderr)
    sys.exit("name these features on tally's dependencies in Cargo.toml, or make test rebuilds them")
print(f"same_build: {len(demo)} dependencies built once for make demo and make test")
