"""Fail when the junit results hold fewer tests than expected (pytest exit 5 must not pass)."""

import glob
import sys
import xml.etree.ElementTree as ET


def main(build_dir: str, minimum: int) -> int:
    total = failures = skipped = 0
    files = glob.glob(f"{build_dir}/**/*.xml", recursive=True)
    for path in files:
        root = ET.parse(path).getroot()
        for suite in root.iter("testsuite"):
            total += int(suite.get("tests", 0))
            failures += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
            skipped += int(suite.get("skipped", 0))
    print(f"tests: {total - failures - skipped} passed, {failures} failed, {skipped} skipped ({len(files)} result files)")
    if failures:
        return 1
    if total < minimum:
        print(f"expected at least {minimum} tests, found {total}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
