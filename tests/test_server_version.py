"""The server extension loads, serves ``GET {base_url}cvat-train/api/version`` to
authenticated clients only, and the package is installed the way JupyterLab finds it
(server extension enabled by jupyter-config, labextension in share/jupyter)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from importlib.metadata import version as installed_version
from pathlib import Path

import pytest
import tomllib
from tornado.httpclient import HTTPClientError
from traitlets.config import Config

from jupyter_cvat_train import __version__

pytest_plugins = ["pytest_jupyter.jupyter_server"]

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def jp_server_config():
    return Config({"ServerApp": {"jpserver_extensions": {"jupyter_cvat_train": True}}})


async def test_version_route_answers_the_package_version(jp_fetch, jp_base_url):
    response = await jp_fetch("cvat-train", "api", "version")
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert json.loads(response.body) == {"version": __version__}
    # jp_base_url is not "/": the route must live under the server's base_url.
    assert jp_base_url != "/" and response.effective_url.split("?")[0].endswith(f"{jp_base_url}cvat-train/api/version")


@pytest.mark.parametrize("authorization", ["", "token not-the-token"])
async def test_version_route_refuses_requests_without_the_token(jp_fetch, authorization):
    with pytest.raises(HTTPClientError) as refused:
        await jp_fetch("cvat-train", "api", "version", headers={"Authorization": authorization})
    assert refused.value.code == 403


def test_versions_agree(repo_root):
    """pyproject.toml, _version.py, the installed metadata and package.json say the same."""
    pyproject = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]["version"]
    package_json = json.loads((repo_root / "package.json").read_text())["version"]
    assert __version__ == pyproject == installed_version("jupyter_cvat_train") == package_json


def _jupyter(*args: str) -> str:
    jupyter = shutil.which("jupyter", path=str(Path(sys.executable).parent)) or "jupyter"
    run = subprocess.run([jupyter, *args], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    return re.sub(r"\x1b\[[0-9;]*m", "", run.stdout + run.stderr)  # without colour codes


@pytest.mark.slow
def test_server_extension_is_enabled_and_loads():
    out = _jupyter("server", "extension", "list")
    assert "jupyter_cvat_train enabled" in out, out
    assert f"jupyter_cvat_train {__version__} OK" in out, out


@pytest.mark.slow
def test_labextension_is_installed_enabled_and_ok():
    if not (REPO_ROOT / "jupyter_cvat_train" / "labextension" / "package.json").is_file():
        pytest.skip("the labextension is not built: run `make build` (or `jlpm build`)")
    out = _jupyter("labextension", "list")
    line = next((ln for ln in out.splitlines() if "jupyter-cvat-train" in ln), "")
    assert f"jupyter-cvat-train v{__version__}" in line and "enabled" in line and "OK" in line, out
