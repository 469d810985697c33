"""Item 1 of the issue: the wheel installs into a fresh venv, offline."""
import glob
import os
import subprocess

import pytest

WHEEL_DIR = os.environ.get("LARDER_WHEEL_DIR")


@pytest.mark.skipif(not WHEEL_DIR, reason="LARDER_WHEEL_DIR not set (CTest sets it)")
def test_the_wheel_installs_into_a_fresh_venv_without_network(tmp_path):
    wheels = sorted(glob.glob(os.path.join(WHEEL_DIR, "larder-*-py3-none-*.whl")),
                    key=os.path.getmtime)
    assert wheels, f"no wheel in {WHEEL_DIR}: build the python_wheel target"
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LARDER_LIBRARY")}
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True, env=env)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--no-index",
                    "--disable-pip-version-check", wheels[-1]], check=True, env=env)
    script = ("import larder, os\n"
              "c = larder.Cache(max_bytes=1 << 20, serializer='pickle')\n"
              "c['k'] = {'v': 1}\n"
              "assert c['k'] == {'v': 1} and list(c) == ['k']\n"
              "print(larder.version(), os.path.dirname(larder.__file__))\n")
    out = subprocess.run([str(venv / "bin" / "python"), "-c", script], check=True, env=env,
                         cwd=tmp_path, capture_output=True, text=True).stdout
    version, where = out.split()
    assert where.startswith(str(venv))  # the installed copy, with its own liblarder.so.1
    assert os.path.exists(os.path.join(where, "liblarder.so.1"))
    assert version == os.path.basename(wheels[-1]).split("-")[1]
