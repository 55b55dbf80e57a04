"""The light install: ``pip install medmo-agent`` without the ``[local]`` extra.

A fresh virtual environment gets exactly the distributions the core requirements of
``pyproject.toml`` resolve to (followed through the installed packages' own metadata, with
their markers and extras), linked from this environment so that it builds offline in
seconds. torch, transformers and the CUDA wheels are not in it. Every surface must then
work over an OpenAI-compatible server, and the local backend must fail with one line that
names the extra.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import socket
import subprocess
import textwrap
import venv
from pathlib import Path

import pytest
from dependencies import LOCAL_ONLY, ROOT, closure

pytestmark = pytest.mark.slow


def _link_distributions(dists: list[importlib.metadata.Distribution], site: Path) -> None:
    """Link each distribution's top-level files and folders (from its RECORD) into ``site``."""
    site.mkdir(parents=True)
    for dist in dists:
        base = Path(dist.locate_file(""))
        tops = {Path(f).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in sorted(tops):
            target = site / top
            if not target.exists() and (base / top).exists():
                target.symlink_to(base / top)


@pytest.fixture(scope="module")
def light_env(tmp_path_factory) -> dict[str, str]:
    """A virtual environment holding the light install; returns the environment to run in."""
    core = closure()
    local = sorted(name for name in core if LOCAL_ONLY.match(name))
    assert not local, f"the core requirements pull in the local model's packages: {local}"
    root = tmp_path_factory.mktemp("light")
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(env_dir)
    py = env_dir / "bin" / "python"
    purelib = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    _link_distributions(list(core.values()), root / "site")
    # The checkout itself, as an editable install would put it on the path
    (Path(purelib) / "medmo_light.pth").write_text(f"{root / 'site'}\n{ROOT}\n")
    # The console script pip writes for [project.scripts] medmo = "medmo_agent.cli:main"
    script = env_dir / "bin" / "medmo"
    script.write_text(f"#!{py}\nimport sys\nfrom medmo_agent.cli import main\nsys.exit(main())\n")
    script.chmod(0o755)
    keep = ("HOME", "LANG", "TMPDIR", "SYSTEMROOT")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(
        PATH=f"{env_dir / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin",
        HF_HUB_OFFLINE="1",
        MEDMO_RETRIES="0",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def _run(env: dict[str, str], *args: str, cwd: Path | None = None, timeout: float = 120):
    return subprocess.run(
        list(args),
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens


def test_every_surface_imports_without_torch(light_env):
    code = textwrap.dedent(
        """
        import importlib.util, sys
        for name in ("torch", "transformers", "torchvision", "triton", "accelerate"):
            assert importlib.util.find_spec(name) is None, name + " is installed"
        import medmo_agent, mcp_server, jupyter_ext
        import medmo_agent.toolkit, medmo_agent.agent, medmo_agent.review.runner
        import medmo_agent.backends.openai_compat, medmo_agent.imaging.overlay
        import mcp_server.app, jupyter_ext.panels, jupyter_ext.magics, jupyter_ext.agent_panel
        from medmo_agent.config import Settings
        assert Settings.from_env({"MEDMO_MAX_NEW_TOKENS": "7"}).max_new_tokens == 7
        heavy = sorted(m for m in ("torch", "transformers") if m in sys.modules)
        assert not heavy, heavy
        print("ok")
        """
    )
    done = _run(light_env, "python", "-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_medmo_help_lists_every_command(light_env):
    done = _run(light_env, "medmo", "--help")
    assert done.returncode == 0, done.stderr
    for command in ("serve", "agent", "review", "info", "ask"):
        assert re.search(rf"\b{command}\b", done.stdout), f"{command} missing:\n{done.stdout}"


def _one_line_error(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr and "ImportError" not in done.stderr
    return lines[0]


def test_the_openai_backend_reports_an_unreachable_server_in_one_line(light_env, tmp_path):
    from PIL import Image

    Image.new("L", (32, 32), 90).save(tmp_path / "x.png")
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    ask = _run(
        light_env, "medmo", "ask", "x.png", "Normal?", "--backend", "openai", "--base-url", url,
        cwd=tmp_path,
    )  # fmt: skip
    line = _one_line_error(ask)
    assert line.startswith("medmo: error:") and url in line
    agent = _run(
        light_env, "medmo", "agent", "x.png", "Normal?", "--backend", "openai", "--base-url", url,
        cwd=tmp_path,
    )  # fmt: skip
    assert agent.returncode != 0
    assert "Traceback" not in agent.stderr and "ModuleNotFoundError" not in agent.stderr
    assert url in agent.stderr + agent.stdout


def test_the_local_backend_without_the_extra_names_the_extra(light_env, tmp_path):
    from PIL import Image

    Image.new("L", (32, 32), 90).save(tmp_path / "x.png")
    done = _run(light_env, "medmo", "ask", "x.png", "Normal?", "--backend", "transformers",
                cwd=tmp_path)  # fmt: skip
    line = _one_line_error(done)
    assert 'pip install "medmo-agent[local]"' in line
    assert "torch and transformers are not installed" in line
    info = _run(light_env, "medmo", "info")
    assert info.returncode == 0, info.stderr
    assert 'torch is not installed: the local model needs pip install "medmo-agent[local]"' in (
        info.stdout
    )
    serve = _run(light_env, "medmo", "serve")  # the default backend, checked at start
    assert 'pip install "medmo-agent[local]"' in _one_line_error(serve)
    tiny = _run(light_env, "python", "-m", "medmo_agent.testing.tiny", str(tmp_path / "t"))
    assert "[local]" in _one_line_error(tiny)


def test_the_mcp_server_serves_over_stdio_with_the_openai_backend(light_env, tmp_path):
    from PIL import Image

    Image.new("L", (32, 32), 90).save(tmp_path / "x.png")
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    code = textwrap.dedent(
        f"""
        import asyncio, sys
        from mcp import Client, StdioServerParameters

        async def main():
            params = StdioServerParameters(
                command="medmo", args=["serve", "--backend", "openai", "--base-url", {url!r}],
            )
            async with Client(params, read_timeout_seconds=60) as client:
                tools = await client.list_tools()
                result = await client.call_tool("vqa", {{"image": "x.png", "question": "?"}})
            assert "vqa" in [t.name for t in tools.tools]
            assert result.is_error, result
            print(result.content[0].text)

        asyncio.run(main())
        assert "torch" not in sys.modules
        """
    )
    done = _run(light_env, "python", "-c", code, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "BackendUnavailableError" in done.stdout and url in done.stdout
