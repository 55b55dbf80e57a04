"""Optional parts of the install.

``pip install medmo-agent`` is the light install: every surface (MCP server, agent, widgets,
reviews, imaging) over an OpenAI-compatible server. The local GPU model (the
``transformers`` backend) needs torch and transformers, which come with the ``[local]``
extra; asking for it without them is one clear error, not an ``ImportError`` from deep
inside a call.
"""

from __future__ import annotations

import importlib.util

from .errors import ConfigError

__all__ = ["LOCAL_EXTRA_INSTALL", "missing_local_packages", "require_local"]

#: The command that adds the local model to a light install.
LOCAL_EXTRA_INSTALL = 'pip install "medmo-agent[local]"'

# What the local backend imports (torchvision, accelerate and triton are checked where used)
_LOCAL_PACKAGES = ("torch", "transformers")


def missing_local_packages() -> list[str]:
    """The local model's packages that are not installed (empty when it can load)."""
    return [name for name in _LOCAL_PACKAGES if importlib.util.find_spec(name) is None]


def require_local(what: str = "The local model (backend 'transformers')") -> None:
    """Raise :class:`ConfigError` naming the ``[local]`` extra unless torch and
    transformers are installed.

    Args:
        what: What needs them, for the message.
    """
    missing = missing_local_packages()
    if not missing:
        return
    verb = "is" if len(missing) == 1 else "are"
    raise ConfigError(
        f"{what} needs the [local] extra: {' and '.join(missing)} {verb} not installed.",
        input="backend",
        fix=f"{LOCAL_EXTRA_INSTALL}, or use --backend openai --base-url URL to reach an "
        "OpenAI-compatible server (vLLM, SGLang) that runs the model.",
    )
