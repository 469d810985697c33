"""The Python README, followed verbatim from a fresh clone.

Clones the repository (its committed HEAD) into a temporary directory, runs
the README's block marked `readme-test: install` there with bash, line by
line as a user would paste it, and then the block marked `readme-test:
example` with the venv's python. The environment is the user's: no
PYTHONPATH, no LARDER_LIBRARY.

One shortcut, unless LARDER_README_FULL=1: the private jemalloc that
scripts/bootstrap.sh would build from Debian's source package (a minute of
apt-get source and make) is copied in from this build's LARDER_JEMALLOC_DIR
first; bootstrap.sh then finds it and skips that step, as it does on any
second run. Run by the CTest python_readme_from_a_fresh_clone.
"""
import os
import re
import shutil
import subprocess

import pytest

SOURCE = os.environ.get("LARDER_SOURCE_DIR")
README = os.path.join(SOURCE or "", "bindings", "python", "README.md")


def marked_block(text, marker):
    match = re.search(r"<!-- readme-test: " + marker + r"\b[^>]*-->\s*```(\w+)\n(.*?)```",
                      text, re.S)
    assert match, f"no block marked readme-test: {marker}"
    return match.group(2)


@pytest.mark.skipif(not SOURCE, reason="LARDER_SOURCE_DIR not set (CTest sets it)")
def test_the_python_readme_works_verbatim_from_a_fresh_clone(tmp_path):
    with open(README, encoding="utf-8") as f:
        text = f.read()
    install = marked_block(text, "install")
    example = marked_block(text, "example")
    clone = tmp_path / "larder"
    subprocess.run(["git", "clone", "--quiet", SOURCE, str(clone)], check=True)
    jemalloc = os.environ.get("LARDER_JEMALLOC_DIR")
    if os.environ.get("LARDER_README_FULL") != "1" and jemalloc:
        for part in ("lib", "include"):
            shutil.copytree(os.path.join(jemalloc, part),
                            clone / "build-deps" / "jemalloc" / part)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "LARDER_LIBRARY", "PYTHONDONTWRITEBYTECODE")}
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", install], cwd=clone, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "b'v'"  # what the README says it prints
    run = subprocess.run([str(clone / ".venv" / "bin" / "python"), "-c", example], cwd=tmp_path,
                         env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("CacheInfo(hits=298, misses=301")
