"""Fail early, with install instructions, when Java 17+ (needed by PySpark 4) is missing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

MIN_JAVA = 17
HOW_TO_INSTALL = (
    "Install a Java 17+ runtime, for example:\n"
    "  Debian/Ubuntu: sudo apt-get update && sudo apt-get install -y openjdk-17-jre-headless\n"
    "  macOS:         brew install openjdk@17\n"
    "then make sure `java -version` works (or set JAVA_HOME)."
)


def java_major_version() -> int | None:
    """Return the major version of the `java` on PATH (or in JAVA_HOME), or None if there is none."""
    java = shutil.which("java")
    if os.environ.get("JAVA_HOME"):
        candidate = os.path.join(os.environ["JAVA_HOME"], "bin", "java")
        if os.path.exists(candidate):
            java = candidate
    if not java:
        return None
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major


def main() -> int:
    major = java_major_version()
    if major is None:
        print(f"error: Java not found. PySpark 4 needs Java {MIN_JAVA}+.\n{HOW_TO_INSTALL}", file=sys.stderr)
        return 1
    if major < MIN_JAVA:
        print(
            f"error: found Java {major}; PySpark 4 needs Java {MIN_JAVA}+.\n{HOW_TO_INSTALL}", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
