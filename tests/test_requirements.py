"""requirements/ci.txt pins every package the full development install brings."""

from __future__ import annotations

from dependencies import LOCAL_ONLY, ROOT, closure
from packaging.utils import canonicalize_name


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements" / "ci.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


def test_ci_pins_cover_everything_the_dev_install_brings():
    pins = _pins()
    needed = closure(("dev",))
    unpinned = sorted(set(needed) - set(pins))
    assert not unpinned, f"add to requirements/ci.txt (bash requirements/refresh.sh): {unpinned}"
    # the dev install includes the local model, so the README's set-up installs everything
    assert {"torch", "transformers", "pytest", "openai", "pydantic-settings"} <= set(needed)


def test_the_core_install_leaves_out_torch_and_transformers():
    names = set(closure())
    assert {"mcp", "langchain", "openai", "pydantic-settings", "pydicom"} <= names
    assert not sorted(n for n in names if LOCAL_ONLY.match(n))
    local = set(closure(("local",)))
    assert {"torch", "torchvision", "transformers", "accelerate"} <= local
