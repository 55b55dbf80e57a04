"""Settings: every default lives here, and each can be overridden by a ``MEDMO_*`` variable.

>>> Settings().model
'MBZUAI/MedMO-8B-Next'
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from .errors import ConfigError

__all__ = ["DEFAULT_MODEL", "MODEL_CHOICES", "Settings"]

DEFAULT_MODEL = "MBZUAI/MedMO-8B-Next"

#: The published checkpoints, with what each is for.
MODEL_CHOICES: dict[str, str] = {
    "MBZUAI/MedMO-8B-Next": "recommended; Qwen3-VL-8B base after the RL stage (~17 GB in bf16)",
    "MBZUAI/MedMO-4B-Next": "for GPUs with less memory (~9 GB in bf16)",
    "MBZUAI/MedMO-8B": "previous generation, 8B",
    "MBZUAI/MedMO-4B": "previous generation, 4B",
}

_ENV_PREFIX = "MEDMO_"


class Settings(BaseSettings):
    """Typed configuration shared by every surface.

    Build with ``Settings()`` for defaults, ``Settings.from_env()`` to apply ``MEDMO_*``
    environment variables (and a ``.env`` file in the working directory), and
    ``settings.replace(model=...)`` for per-call overrides. The environment variable for a
    field is ``MEDMO_`` plus the field name in capitals (``max_new_tokens`` ->
    ``MEDMO_MAX_NEW_TOKENS``); lists are separated by ``os.pathsep``. Every value is checked
    against its type: a bad one is a :class:`ConfigError` naming the variable.
    """

    model_config = SettingsConfigDict(
        env_prefix=_ENV_PREFIX,
        env_file=".env",
        env_ignore_empty=True,  # MEDMO_X= (empty) leaves the default, as if unset
        frozen=True,
        extra="forbid",
    )

    # which model, and where it runs
    model: str = Field(
        DEFAULT_MODEL,
        description="hub id or local checkpoint folder; with --backend openai, the served "
        "model name unless --served-model says otherwise",
    )
    backend: str = Field(
        "transformers",
        description="where answers come from: transformers, on the local GPU, or openai, "
        "a vLLM/SGLang server at --base-url",
    )
    revision: str | None = Field(None, description="model revision (commit, tag or branch) to pin")
    device: str = Field("auto", description="cuda, cuda:1 or cpu (auto: the GPU if there is one)")
    dtype: str = Field(
        "auto",
        description="auto (bfloat16 on GPU, float32 on CPU), bfloat16, float16 or float32",
    )
    # "auto": sdpa, or flash_attention_2 for the batched engine when flash-attn is installed
    attn_implementation: str = "auto"

    # OpenAI-compatible servers (vLLM, SGLang, transformers serve)
    base_url: str | None = Field(
        None,
        description="OpenAI-compatible server URL for --backend openai, e.g. "
        "http://gpu-host:8000/v1",
    )
    api_key: str | None = Field(
        None, description="API key of that server (OPENAI_API_KEY is read too)"
    )
    served_model: str | None = Field(
        None, description="model name the OpenAI-compatible server knows, when not --model"
    )
    request_timeout_s: float = 300.0
    # Hugging Face hub: seconds to wait for a connection before a download of weights that
    # are not cached (an unreachable hub then fails at once with what to do)
    hub_connect_timeout_s: float = 5.0
    retries: int = 2

    # generation
    max_new_tokens: int = Field(
        512, description="cap on generated tokens per model call, unless a call asks otherwise"
    )
    temperature: float = 0.0
    max_new_tokens_limit: int = Field(4096, description="most new tokens a caller may ask for")

    # LLM judge for open-ended benchmark answers (an OpenAI-compatible server, as MedEvalKit)
    judge_model: str | None = Field(
        None,
        description="model that judges open-ended answers (e.g. gpt-4.1, as MedEvalKit); "
        "unset: rule-based scoring only",
    )
    judge_base_url: str | None = Field(
        None,
        description="OpenAI-compatible server of the judge model, e.g. https://api.openai.com/v1",
    )
    judge_api_key: str | None = Field(
        None, description="API key of the judge server (OPENAI_API_KEY is read too)"
    )
    judge_max_new_tokens: int = Field(
        4096, ge=1, description="cap on the judge's reply, in tokens (MedEvalKit asks 4096)"
    )
    judge_concurrency: int = Field(8, ge=1, description="judge requests in flight at once")

    # batching in the local backend
    # "auto": continuous batching with CUDA-graph decode steps on a CUDA GPU, batched
    # ``generate`` calls elsewhere; "continuous" or "batched" to choose explicitly.
    engine: str = "auto"
    # Triton kernels in the continuous engine (CUDA): fused RMSNorm and MLP activation
    # installed into the model (so ``generate`` uses them too), rotary embedding + KV write
    # in one kernel, and mask-free batched attention inside one CUDA graph per step.
    # False keeps the model's stock modules (the engine still matches ``generate``).
    kernels: bool = True
    max_batch_size: int = 32
    batch_wait_ms: float = 5.0
    # Prompts the continuous engine prefills in one call when several arrive together (a
    # volume sweep's slices, an eval's items): larger calls use the GPU better, at the cost
    # of a longer wait for the first token of a call that arrives alone meanwhile.
    prefill_batch_size: int = Field(
        8, ge=1, description="prompts prefilled together in one call (continuous engine)"
    )

    # benchmark evaluation (medmo eval): items in flight at once (the local engine batches
    # them, so this is best at or above max_batch_size) and the cap on new tokens per
    # model call (MedEvalKit allows 8192; short answers need far fewer, reasoning more)
    eval_workers: int = Field(32, ge=1, description="benchmark items sent to the model at once")
    eval_max_new_tokens: int = Field(
        1024, ge=1, description="cap on generated tokens per benchmark item"
    )
    # A benchmark's image archive (SLAKE's imgs.zip) is unpacked once into the datasets
    # cache; its declared sizes are checked first, so a damaged or hostile archive cannot
    # fill the disk (zipfile stops each member at its declared size).
    eval_max_archive_bytes: int = Field(
        8 * 1024**3, ge=1, description="largest unpacked size of a benchmark's image archive"
    )

    # images handed to the model (Qwen3-VL smart_resize budget)
    min_pixels: int = 65_536
    max_pixels: int = 1_048_576  # 1024x1024 -> 1024 visual tokens

    # input guards
    max_image_bytes: int = Field(
        512 * 1024 * 1024, description="largest image file or upload accepted, in bytes"
    )
    # Decoding costs up to about 12 bytes per pixel at peak (float TIFF; 8 for colour), so
    # 32 Mpx (a 5,600 x 5,600 image; mammograms are about 21 Mpx) keeps one request's
    # peak under 512 MiB. The model sees at most max_pixels anyway.
    max_image_pixels: int = Field(32_000_000, description="largest image accepted, in pixels")
    # Longest free-text argument (question, context, report text, options, labels,
    # targets), and all text arguments of one call together, in characters; checked
    # before anything is tokenised. 16,000 characters is about 4,000 tokens of English.
    max_text_chars: int = 16_000
    # In-memory images (inline uploads, re-windowed renderings) kept for their
    # medmo://images/ handles, counted by their pixel bytes; least recently used go first.
    max_held_image_bytes: int = 256 * 1024 * 1024
    # Kept NIfTI volumes read slices from their open file (a .nii.gz is inflated into an
    # anonymous temporary file); past this many, the least recently used one closes its
    # files and reopens them when sliced again, so held images cannot exhaust descriptors.
    max_open_volumes: int = 32
    # image paths longer than this are refused before any file system access (PATH_MAX)
    max_path_chars: int = 4096

    # whole-volume sweeps (the ground_volume task): one request per slice
    max_volume_slices: int = Field(
        1000, description="most slices one volume sweep may read (use a range or step past it)"
    )
    # slices in flight at once: the local engine batches them (up to max_batch_size per
    # step); the OpenAI-compatible backend sends this many HTTP requests concurrently
    volume_concurrency: int = Field(64, ge=1, description="slices of a sweep in flight at once")
    # Each slice in flight is decoded (up to ~12 bytes per pixel at peak): large slices
    # lower the concurrency so a sweep's decoded slices stay near 1.5 GiB together.
    volume_max_inflight_pixels: int = Field(
        128 * 1024 * 1024,
        ge=1,
        description="most slice pixels a sweep holds decoded at once; large slices lower "
        "volume_concurrency to fit (at least one slice is always in flight)",
    )
    # per-slice answer budget when the caller gives none: boxes cost about 20 tokens each
    volume_max_new_tokens: int = 256
    # least IoU that links boxes of adjacent slices into one finding (or centre-inside)
    volume_link_iou: float = Field(0.3, ge=0.0, le=1.0)
    # slices shown in the study-level read (vLLM: raise --limit-mm-per-prompt to match)
    volume_study_read_images: int = Field(6, ge=1)
    # key slices drawn in a sweep's overview strip
    volume_overview_findings: int = Field(6, ge=1)
    # folders the MCP server may read images from (os.pathsep-separated in the environment)
    allowed_dirs: Annotated[tuple[Path, ...], NoDecode] = ()

    # OAuth 2.1 resource server (``medmo serve --http``): access tokens from an identity provider
    auth_issuer: str | None = Field(
        None,
        description="OAuth issuer URL whose access tokens the HTTP server accepts, exactly as "
        "the identity provider writes it in its tokens",
    )
    auth_resource_url: str | None = Field(
        None,
        description="this server's public URL (the MCP endpoint), published in its "
        "protected-resource metadata; required beyond loopback (loopback: "
        "http://HOST:PORT/PATH)",
    )
    auth_audience: str | None = Field(
        None, description="audience (aud) tokens must be issued for; unset: the resource URL"
    )
    auth_read_scope: str = Field(
        "medmo:read", description="scope needed for every request (images, results, resources)"
    )
    auth_model_scope: str = Field(
        "medmo:model", description="scope also needed to call a tool that runs the model"
    )
    auth_token_check: str = Field(
        "jwt",
        description="jwt: verify signed access tokens with the issuer's keys; introspection: "
        "ask the issuer about each token (RFC 7662)",
    )
    auth_algorithms: str = Field(
        "RS256,PS256,ES256,EdDSA",
        description="JWT signature algorithms accepted, comma-separated (none and HS* never)",
    )
    auth_clock_skew_s: float = Field(
        30.0, description="seconds of clock difference allowed when checking exp, nbf and iat"
    )
    auth_jwks_cache_s: float = Field(
        3600.0, description="seconds the issuer's metadata and signing keys are reused"
    )
    auth_jwks_refetch_min_s: float = Field(
        30.0,
        description="fewest seconds between key refetches caused by a token with an unknown "
        "key id (key rotation)",
    )
    auth_introspection_url: str | None = Field(
        None,
        description="RFC 7662 introspection endpoint; unset: the issuer's metadata names it",
    )
    auth_client_id: str | None = Field(
        None, description="client id this server authenticates with at the introspection endpoint"
    )
    # Only from the environment (MEDMO_AUTH_CLIENT_SECRET) or .env: a command-line option
    # would show it in the process list.
    auth_client_secret: str | None = None
    auth_http_timeout_s: float = Field(
        10.0, description="seconds to wait for the issuer (metadata, keys, introspection)"
    )
    auth_max_response_bytes: int = Field(
        1_048_576,
        description="largest answer read from the issuer (metadata, keys, introspection)",
    )

    # privacy
    include_phi: bool = False  # True lets identifying DICOM fields into outputs
    # True names image paths in machine outputs (--json, MCP results, audit log, traces,
    # review files); otherwise a path is shown as a label (medmo_agent/privacy.py)
    include_paths: bool = False

    def __init__(self, **values: Any) -> None:
        # Validation only: BaseSettings.__init__ would build every settings source on each
        # call (milliseconds) just for ``settings_customise_sources`` to drop them; the
        # environment is read by ``from_env`` alone.
        _validate_into(self, values)

    @field_validator("allowed_dirs", mode="before")
    @classmethod
    def _split_dirs(cls, value: Any) -> Any:
        # The environment gives one string; code gives a list or tuple of paths.
        if isinstance(value, str):
            value = [p for p in value.split(os.pathsep) if p]
        if isinstance(value, (list, tuple)):
            return tuple(Path(p).expanduser() for p in value)
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # ``Settings(...)`` is the defaults plus what is passed, whatever the process
        # environment holds; the environment applies only through ``from_env``.
        return (init_settings,)

    def replace(self, **changes: Any) -> Settings:
        """Return a copy with some fields changed (``None`` values are ignored)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        unknown = set(changes) - set(type(self).model_fields)
        if unknown:
            raise ConfigError(
                f"Unknown setting(s): {', '.join(sorted(unknown))}.",
                fix=f"Use one of: {', '.join(type(self).model_fields)}.",
            )
        if not changes:
            return self
        return type(self)(**{**self._values(), **changes})

    @classmethod
    def from_env(
        cls,
        environ: dict[str, str] | None = None,
        *,
        env_file: str | Path | None = ".env",
        **overrides: Any,
    ) -> Settings:
        """Defaults, then the ``.env`` file, then ``MEDMO_*`` variables, then ``overrides``.

        Args:
            environ: The variables to read; defaults to ``os.environ``.
            env_file: A dotenv file read for variables ``environ`` does not set (``.env``
                in the working directory by default; ``None`` for none). A missing file is
                no error.
            **overrides: Field values that win over both (``None`` values are ignored).
        """
        env = os.environ if environ is None else environ
        # Only the variables that can matter, case-insensitive as on the real environment;
        # empty values count as unset.
        names = [k for k in env if k.upper().startswith((_ENV_PREFIX, "OPENAI_API_KEY"))]
        relevant = tuple(sorted((k.lower(), env[k]) for k in names if env[k] != ""))
        return _from_sources(cls, relevant, env_file, _file_stamp(env_file)).replace(**overrides)

    def _values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in type(self).model_fields}


class _MappingEnvSource(EnvSettingsSource):
    """``MEDMO_*`` variables from given pairs instead of ``os.environ`` (tests pass a dict)."""

    def __init__(self, settings_cls: type[BaseSettings], pairs: tuple[tuple[str, str], ...]):
        self._pairs = pairs
        super().__init__(settings_cls)

    def _load_env_vars(self) -> dict[str, str | None]:
        return dict(self._pairs)


def _file_stamp(path: str | Path | None) -> tuple[int, int] | None:
    """What identifies one version of the dotenv file (None: no file)."""
    try:
        stat = os.stat(Path(path).expanduser()) if path is not None else None
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size) if stat is not None else None


@functools.lru_cache(maxsize=32)
def _from_sources(
    cls: type[Settings],
    pairs: tuple[tuple[str, str], ...],
    env_file: str | Path | None,
    stamp: tuple[int, int] | None,
) -> Settings:
    """Settings from the environment pairs and the dotenv file; cached, because the sources
    inspect every field's type on each call (milliseconds) and ``from_env`` runs per image
    load. ``stamp`` is part of the key so that an edited ``.env`` is read again."""
    env = _MappingEnvSource(cls, pairs)
    # only_existing: a .env line is used only when it names a field
    dotenv = DotEnvSettingsSource(
        cls, env_file=env_file if stamp else None, dotenv_filtering="only_existing"
    )
    # Each source yields only the fields it sets, already decoded; the environment wins.
    values = {k: v for k, v in {**dotenv(), **env()}.items() if k in cls.model_fields}
    fallback = env.env_vars.get("openai_api_key") or dotenv.env_vars.get("openai_api_key")
    for key in ("api_key", "judge_api_key"):
        if key not in values and fallback:
            values[key] = fallback
    settings = cls.__new__(cls)
    _validate_into(settings, values, from_env=True)
    return settings


def _validate_into(settings: Settings, values: dict[str, Any], from_env: bool = False) -> None:
    """Validate ``values`` into ``settings`` (pydantic's own ``__init__``); a bad value is a
    ConfigError naming the setting, or the variable when it came from the environment."""
    try:
        BaseModel.__init__(settings, **values)
    except ValidationError as exc:
        raise _config_error(exc, from_env=from_env) from None


def _describe(field: str) -> str:
    """The expected type of a field, in words for an error message."""
    hint = Settings.model_fields[field].annotation
    text = str(hint)
    if field == "allowed_dirs":
        return f"folder paths separated by {os.pathsep!r}"
    if hint is bool:
        return "a boolean (1, true, yes, on or 0, false, no, off)"
    if hint is int:
        return "a whole number"
    if hint is float:
        return "a number"
    return "text" if "str" in text else text


def _config_error(exc: ValidationError, *, from_env: bool = False) -> ConfigError:
    """The first problem of a failed validation as a ConfigError naming the setting, or
    the environment variable when the value came from there."""
    first = exc.errors()[0]
    field = str(first["loc"][0]) if first["loc"] else ""
    if first["type"] == "extra_forbidden":
        return ConfigError(
            f"Unknown setting: {field}.",
            input=field,
            fix=f"Use one of: {', '.join(Settings.model_fields)}.",
        )
    variable = _ENV_PREFIX + field.upper()
    value = first.get("input")
    if from_env:
        return ConfigError(
            f"Environment variable {variable}={value!r} is not a valid value: {first['msg']}.",
            input=variable,
            fix=f"Set it to {_describe(field)}, or unset it for the default.",
        )
    return ConfigError(
        f"Setting {field}={value!r} is not valid: {first['msg']}.",
        input=field,
        fix=f"Pass {_describe(field)} (the variable {variable}).",
    )
