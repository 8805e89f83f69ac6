"""Typed settings, read from the environment in one place.

Every environment variable the service understands is mapped here; nothing else in the
package reads ``os.environ``.  ``load_settings`` raises ``ConfigError`` with one line that
names the variable and what was expected, so start-up can stop without a traceback.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

log = logging.getLogger(__name__)

DEV_USER = "dev-user@localhost"
DEFAULT_SQLITE_URL = "sqlite:///agent_council.db"


class ConfigError(Exception):
    """A setting has a value the service cannot run with."""


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_SQLITE_URL  # normalised; SQLite means the embedded default
    sessions_dir: Path = Path("sessions")
    db_pool_size: int = 10
    db_max_overflow: int = 20
    db_connect_timeout_s: int = 2
    # Bounds on every app transaction (SET LOCAL: PgBouncer-safe); a query with no answer
    # at all is abandoned at statement timeout + 1 s (store/pg_deadline.py).
    db_statement_timeout_ms: int = 3000
    db_lock_timeout_ms: int = 1000
    db_pool_timeout_s: float = 2.0  # wait for a free pooled connection, then 503
    db_keepalives_idle_s: int = 10
    db_keepalives_interval_s: int = 2
    db_keepalives_count: int = 3
    state_flush_interval_ms: int = 350
    # The runbook's GIN index for operators' ad-hoc JSONB queries; with fillfactor 50 it
    # costs a progress flush ~1% and a state write ~7% (docs/BENCHMARKS.md, target 5).
    state_gin_index: bool = True
    auth_mode: str = "dev"  # dev | token | proxy | jwt | prod (see api/auth.py)
    auth_tokens: tuple[tuple[str, str], ...] = ()  # (user, sha256 digest of the token)
    # proxy / prod: the gateway's header, believed only from these addresses or networks.
    auth_proxy_header: str = "X-Authenticated-User"
    auth_trusted_proxies: tuple[str, ...] = ("127.0.0.1",)
    auth_allow_x_user_id: bool = False  # prod: X-User-Id too (AUTH_ALLOW_X_USER_ID_IN_PROD)
    # jwt / prod: Authorization: Bearer <JWT>.
    auth_jwt_secret: str | None = field(default=None, repr=False)
    auth_jwt_public_key: str | None = field(default=None, repr=False)
    auth_jwt_algorithms: tuple[str, ...] = ()
    auth_jwt_audience: tuple[str, ...] = ()
    auth_jwt_issuer: str | None = None
    auth_jwks_url: str | None = None
    auth_jwks_cache_s: int = 300
    auth_jwks_min_refresh_s: int = 10
    auth_jwt_leeway_s: int = 30
    auth_user_claims: tuple[str, ...] = ("preferred_username", "upn", "email", "sub")
    user_daily_budget_usd: float | None = None  # per user per UTC day; None: no limit
    ops_token_hash: str | None = field(default=None, repr=False)  # /metrics, health detail
    ops_bind: str | None = None  # host:port whose connections see them without a token
    cors_origins: tuple[str, ...] = ()
    max_upload_mb: int = 20
    max_content_length_mb: int = 100
    council_max_parallel: int = 5
    # LLM calls in flight per process, over all runs (workflow/llm_pool.py).
    llm_max_concurrency: int = 64
    # The old server's users have six-agent councils and no documented cap: keep twice that.
    council_max_agents: int = 12
    council_model: str = "gpt-5.1"
    chairman_model: str | None = None
    openai_api_key: str | None = field(default=None, repr=False)
    openai_base_url: str | None = None
    llm_timeout_s: float = 60.0  # per attempt, in total (a hung gateway costs seconds)
    llm_connect_timeout_s: float = 5.0
    llm_max_retries: int = 2
    llm_stream: bool = True  # stream answers so members' text grows live
    searxng_url: str | None = None  # web search for generic endpoints (first choice)
    tavily_api_key: str | None = field(default=None, repr=False)  # second choice
    models_cache_s: int = 300  # GET /api/models keeps the provider's list this long
    offline_latency_ms: int = 0
    offline_fail_members: tuple[str, ...] = ()  # members the offline stand-in fails on purpose
    prices_file: str | None = None
    run_lease_seconds: int = 60
    # A run (build, execute, review, synthesize) still going after this is stopped, its
    # unfinished members marked cancelled; takeovers keep the first start's deadline.
    run_deadline_seconds: int = 3600
    # build_council and synthesize answer with their result: the request waits this long
    # for the leased run (taken over elsewhere if this worker dies), then answers 502.
    sync_step_wait_seconds: int = 900
    log_format: str = "text"
    progress_api: bool = False  # POST /api/sessions/<id>/progress for external reporters
    # On PostgreSQL, step writes are copied to sessions/<id>/state.json so that a rollback
    # (DATABASE_URL unset) loses nothing; turn off once the confidence window has passed.
    state_file_mirror: bool = True
    # Owner of legacy sessions that name none (the old server's migration used this user).
    migration_admin_external_id: str | None = None

    @property
    def legacy_owner(self) -> str:
        """Who owns a legacy session whose document names no ``user_id``."""
        return self.migration_admin_external_id or DEV_USER

    @property
    def backend(self) -> str:
        return "postgresql" if self.database_url.startswith("postgresql") else "sqlite"


def normalize_database_url(raw: str) -> tuple[str, str | None]:
    """Return the URL the synchronous app can use, and a note when it had to rewrite it.

    Accepts ``postgresql://``, ``postgres://``, ``postgresql+psycopg2://``,
    ``postgresql+asyncpg://`` (rewritten to psycopg2: the app is synchronous) and
    ``sqlite:///path``.
    """
    value = raw.strip()
    if value.startswith("postgres://"):
        value = "postgresql://" + value[len("postgres://") :]
    try:
        url = make_url(value)
    except ArgumentError as e:
        raise ConfigError(
            f"DATABASE_URL is not a database URL ({mask_url(raw)}); expected "
            "postgresql://user:password@host:port/dbname or sqlite:///path"
        ) from e
    note = None
    if url.get_backend_name() == "postgresql":
        # Only the explicit driver counts: SQLAlchemy's default for a bare postgresql://
        # differs between versions, and this app always runs on psycopg2.
        driver = url.drivername.partition("+")[2]
        if driver == "asyncpg":
            note = "DATABASE_URL uses postgresql+asyncpg; rewritten to postgresql+psycopg2"
        elif driver not in ("psycopg2", ""):
            raise ConfigError(
                f"DATABASE_URL driver '{driver}' is not supported; use postgresql:// "
                "(psycopg2) or postgresql+asyncpg:// (rewritten to psycopg2)"
            )
        url = url.set(drivername="postgresql+psycopg2")
    elif url.get_backend_name() != "sqlite":
        raise ConfigError(
            f"DATABASE_URL scheme '{url.drivername}' is not supported; expected "
            "postgresql://... or sqlite:///path"
        )
    return url.render_as_string(hide_password=False), note


def mask_url(raw: str | URL | None) -> str | None:
    """The URL with its password replaced by ***, safe for logs and /api/health."""
    if raw is None:
        return None
    try:
        url = raw if isinstance(raw, URL) else make_url(str(raw))
    except ArgumentError:
        return "<unparseable URL>"
    return url.render_as_string(hide_password=True)


def _int(env: Mapping[str, str], name: str, default: int, minimum: int, maximum: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        value = None
    if value is None or not minimum <= value <= maximum:
        raise ConfigError(
            f"{name}={raw!r} is invalid; expected a whole number from {minimum} to {maximum}"
        )
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    parsed = parse_bool(raw)
    if parsed is None:
        raise ConfigError(f"{name}={raw!r} is invalid; expected one of 1/0, true/false, yes/no")
    return parsed


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value not in choices:
        raise ConfigError(f"{name}={raw!r} is invalid; expected one of {', '.join(choices)}")
    return value


def parse_bool(raw: str) -> bool | None:
    """true/false, 1/0, yes/no, on/off in any case; None when it is none of them."""
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    return None


def hash_token(token: str) -> str:
    """How bearer tokens are kept and compared: only their SHA-256 digest."""
    return hashlib.sha256(token.encode()).hexdigest()


def _tokens(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """(user, sha256 digest) pairs; only digests are kept in memory.

    AUTH_TOKENS holds ``user=token`` entries (or bare tokens, named after their digest),
    AUTH_TOKEN_HASHES ``user=<sha256 hex>`` entries, both comma-separated.
    """
    pairs: list[tuple[str, str]] = []
    for raw in env.get("AUTH_TOKENS", "").split(","):
        user, _, token = raw.strip().rpartition("=") if "=" in raw else ("", "", raw.strip())
        if not token:
            continue
        digest = hash_token(token)
        pairs.append((user.strip() or f"token-{digest[:12]}", digest))
    for raw in env.get("AUTH_TOKEN_HASHES", "").split(","):
        if not raw.strip():
            continue
        user, _, digest = raw.strip().rpartition("=")
        digest = digest.lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ConfigError(
                "AUTH_TOKEN_HASHES has an entry that is not user=<sha256 hex digest>; expected "
                "comma-separated user=<64 hex characters>"
            )
        pairs.append((user.strip() or f"token-{digest[:12]}", digest))
    return tuple(pairs)


def process_environment(dotenv_path: Path = Path(".env")) -> dict[str, str]:
    """``os.environ`` laid over the working directory's ``.env`` file.

    The server this one replaces told users to keep their API key in ``.env``; the real
    environment still wins, so a deployment's variables are never overridden by a stray file.
    """
    from dotenv import dotenv_values

    from_file = {k: v for k, v in dotenv_values(dotenv_path).items() if v is not None}
    return {**from_file, **os.environ}


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from an environment mapping (the process environment over ``.env``
    by default)."""
    env = process_environment() if env is None else env
    database_url = DEFAULT_SQLITE_URL
    raw_url = env.get("DATABASE_URL", "").strip()
    if raw_url:
        database_url, note = normalize_database_url(raw_url)
        if note:
            log.warning(note)
    auth_mode = _choice(env, "AUTH_MODE", "dev", AUTH_MODES)
    tokens = _tokens(env)
    if auth_mode == "token" and not tokens:
        raise ConfigError(
            "AUTH_MODE=token needs AUTH_TOKENS (comma-separated user=token) or "
            "AUTH_TOKEN_HASHES (comma-separated user=<sha256 hex>)"
        )
    default_cors = "http://localhost:5173" if auth_mode == "dev" else ""
    cors = tuple(o.strip() for o in env.get("CORS_ORIGINS", default_cors).split(",") if o.strip())
    timeout_raw = env.get("LLM_TIMEOUT_S", "").strip()
    try:
        llm_timeout = float(timeout_raw) if timeout_raw else 60.0
        if not 0 < llm_timeout <= 3600:
            raise ValueError
    except ValueError:
        raise ConfigError(
            f"LLM_TIMEOUT_S={timeout_raw!r} is invalid; expected seconds between 0 and 3600"
        ) from None
    return Settings(
        database_url=database_url,
        sessions_dir=Path(env.get("SESSIONS_DIR", "").strip() or "sessions"),
        db_pool_size=_int(env, "DB_POOL_SIZE", 10, 1, 1000),
        db_max_overflow=_int(env, "DB_MAX_OVERFLOW", 20, 0, 1000),
        db_connect_timeout_s=_int(env, "DB_CONNECT_TIMEOUT_S", 2, 1, 60),
        db_statement_timeout_ms=_int(env, "DB_STATEMENT_TIMEOUT_MS", 3000, 100, 600_000),
        db_lock_timeout_ms=_int(env, "DB_LOCK_TIMEOUT_MS", 1000, 10, 600_000),
        db_pool_timeout_s=_int(env, "DB_POOL_TIMEOUT_MS", 2000, 10, 600_000) / 1000,
        db_keepalives_idle_s=_int(env, "DB_KEEPALIVES_IDLE_S", 10, 1, 7200),
        db_keepalives_interval_s=_int(env, "DB_KEEPALIVES_INTERVAL_S", 2, 1, 600),
        db_keepalives_count=_int(env, "DB_KEEPALIVES_COUNT", 3, 1, 100),
        state_flush_interval_ms=_int(env, "STATE_FLUSH_INTERVAL_MS", 350, 10, 60_000),
        state_gin_index=_bool(env, "STATE_GIN_INDEX", True),
        auth_mode=auth_mode,
        auth_tokens=tokens,
        **_identity(env, auth_mode),
        user_daily_budget_usd=_budget(env),
        ops_token_hash=_ops_token_hash(env),
        ops_bind=_ops_bind(env),
        cors_origins=cors,
        max_upload_mb=_int(env, "MAX_UPLOAD_MB", 20, 1, 1024),
        max_content_length_mb=_int(env, "MAX_CONTENT_LENGTH_MB", 100, 1, 4096),
        council_max_parallel=_int(env, "COUNCIL_MAX_PARALLEL", 5, 1, 64),
        llm_max_concurrency=_int(env, "LLM_MAX_CONCURRENCY", 64, 1, 4096),
        council_max_agents=_int(env, "COUNCIL_MAX_AGENTS", 12, 1, 100),
        council_model=env.get("COUNCIL_MODEL", "").strip() or "gpt-5.1",
        chairman_model=env.get("CHAIRMAN_MODEL", "").strip() or None,
        openai_api_key=env.get("OPENAI_API_KEY", "").strip() or None,
        openai_base_url=env.get("OPENAI_BASE_URL", "").strip() or None,
        llm_timeout_s=llm_timeout,
        llm_connect_timeout_s=float(_int(env, "LLM_CONNECT_TIMEOUT_S", 5, 1, 120)),
        llm_max_retries=_int(env, "LLM_MAX_RETRIES", 2, 0, 20),
        llm_stream=_bool(env, "LLM_STREAM", True),
        searxng_url=env.get("SEARXNG_URL", "").strip() or None,
        tavily_api_key=env.get("TAVILY_API_KEY", "").strip() or None,
        models_cache_s=_int(env, "MODELS_CACHE_S", 300, 0, 86_400),
        offline_latency_ms=_int(env, "OFFLINE_LATENCY_MS", 0, 0, 600_000),
        offline_fail_members=tuple(
            n.strip() for n in env.get("OFFLINE_FAIL_MEMBERS", "").split(",") if n.strip()
        ),
        prices_file=env.get("COUNCIL_PRICES_FILE", "").strip() or None,
        run_lease_seconds=_int(env, "RUN_LEASE_SECONDS", 60, 2, 86_400),
        run_deadline_seconds=_int(env, "RUN_DEADLINE_SECONDS", 3600, 10, 7 * 86_400),
        sync_step_wait_seconds=_int(env, "SYNC_STEP_WAIT_SECONDS", 900, 1, 86_400),
        log_format=_choice(env, "LOG_FORMAT", "text", ("text", "json")),
        progress_api=_bool(env, "PROGRESS_API", False),
        state_file_mirror=_bool(env, "STATE_FILE_MIRROR", True),
        migration_admin_external_id=env.get("MIGRATION_ADMIN_EXTERNAL_ID", "").strip() or None,
    )


# -- identity, spend limits and operations endpoints (api/auth.py, budget.py) ---------------

# "prod" is the old server's AUTH_MODE=PROD: the gateway header and JWTs both count.
AUTH_MODES = ("dev", "token", "proxy", "jwt", "prod")
JWT_ALGORITHMS = (
    *("HS256", "HS384", "HS512"),
    *("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"),
    *("ES256", "ES384", "ES512", "EdDSA"),
)


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in env.get(name, "").split(",") if v.strip())


def _trusted_proxies(env: Mapping[str, str]) -> tuple[str, ...]:
    """Addresses or networks whose identity headers are believed; gunicorn's
    FORWARDED_ALLOW_IPS unless AUTH_TRUSTED_PROXIES names others ("*": any)."""
    import ipaddress

    name = "AUTH_TRUSTED_PROXIES"
    if not env.get(name, "").strip():
        name = "FORWARDED_ALLOW_IPS"
    values = _list(env, name) or ("127.0.0.1",)
    for value in values:
        if value in ("*", "unix"):
            continue
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ConfigError(
                f"{name} has {value!r}; expected comma-separated IP addresses or networks "
                "(10.0.0.0/8), unix (a UNIX socket), or *"
            ) from None
    return values


def _public_key(env: Mapping[str, str]) -> str | None:
    """PEM text (literal \\n allowed, as env files often carry it) or the path of a PEM file."""
    raw = env.get("AUTH_JWT_PUBLIC_KEY", "").strip()
    if not raw:
        return None
    if "-----BEGIN" in raw:
        return raw.replace("\\n", "\n")
    path = Path(raw)
    try:
        return path.read_text()
    except OSError as e:
        raise ConfigError(
            f"AUTH_JWT_PUBLIC_KEY is neither PEM text nor a readable file ({e.strerror})"
        ) from None


def _identity(env: Mapping[str, str], mode: str) -> dict[str, Any]:
    """The proxy and JWT settings, checked together: a mode that could never identify
    anyone stops start-up instead of answering 401 to everybody."""
    secret = env.get("AUTH_JWT_SECRET", "").strip() or None
    public_key = _public_key(env)
    jwks_url = env.get("AUTH_JWKS_URL", "").strip() or None
    if jwks_url and not jwks_url.startswith(("https://", "http://")):
        raise ConfigError(f"AUTH_JWKS_URL={jwks_url!r} is invalid; expected an https:// URL")
    algorithms = _list(env, "AUTH_JWT_ALG")
    for alg in algorithms:
        if alg not in JWT_ALGORITHMS:
            raise ConfigError(
                f"AUTH_JWT_ALG has {alg!r}; expected some of {', '.join(JWT_ALGORITHMS)}"
            )
    if not algorithms:
        algorithms = (("HS256",) if secret else ()) + (
            ("RS256", "ES256") if public_key or jwks_url else ()
        )
    has_key = bool(secret or public_key or jwks_url)
    if mode == "jwt" and not has_key:
        raise ConfigError(
            "AUTH_MODE=jwt needs AUTH_JWKS_URL, AUTH_JWT_PUBLIC_KEY (RS*/ES*) or "
            "AUTH_JWT_SECRET (HS*)"
        )
    if has_key and mode in ("jwt", "prod"):
        _check_jwt_keys(algorithms, secret, public_key, jwks_url)
    claims = _list(env, "AUTH_USER_CLAIMS") or ("preferred_username", "upn", "email", "sub")
    return {
        "auth_proxy_header": env.get("AUTH_PROXY_HEADER", "").strip() or "X-Authenticated-User",
        "auth_trusted_proxies": _trusted_proxies(env),
        "auth_allow_x_user_id": _bool(env, "AUTH_ALLOW_X_USER_ID_IN_PROD", False),
        "auth_jwt_secret": secret,
        "auth_jwt_public_key": public_key,
        "auth_jwt_algorithms": algorithms if has_key else (),
        "auth_jwt_audience": _list(env, "AUTH_JWT_AUDIENCE"),
        "auth_jwt_issuer": env.get("AUTH_JWT_ISSUER", "").strip() or None,
        "auth_jwks_url": jwks_url,
        "auth_jwks_cache_s": _int(env, "AUTH_JWKS_CACHE_S", 300, 1, 86_400),
        "auth_jwks_min_refresh_s": _int(env, "AUTH_JWKS_MIN_REFRESH_S", 10, 0, 3600),
        "auth_jwt_leeway_s": _int(env, "AUTH_JWT_LEEWAY_S", 30, 0, 600),
        "auth_user_claims": claims,
    }


def _check_jwt_keys(
    algorithms: tuple[str, ...], secret: str | None, public_key: str | None, jwks_url: str | None
) -> None:
    """Every accepted algorithm has a key of its kind; the public key parses."""
    from jwt.algorithms import get_default_algorithms

    known = get_default_algorithms()
    for alg in algorithms:
        if alg.startswith("HS"):
            if not secret:
                raise ConfigError(f"AUTH_JWT_ALG={alg} needs AUTH_JWT_SECRET")
            continue
        if not (public_key or jwks_url):
            raise ConfigError(f"AUTH_JWT_ALG={alg} needs AUTH_JWT_PUBLIC_KEY or AUTH_JWKS_URL")
        if public_key and alg in known:
            try:
                known[alg].prepare_key(public_key)
            except Exception as e:  # InvalidKeyError, ValueError, UnsupportedAlgorithm ...
                if not jwks_url:
                    raise ConfigError(
                        f"AUTH_JWT_PUBLIC_KEY is not a public key usable with {alg} "
                        f"({type(e).__name__})"
                    ) from None


def _budget(env: Mapping[str, str]) -> float | None:
    raw = env.get("USER_DAILY_BUDGET_USD", "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
        if not 0 <= value < 1e9:
            raise ValueError
    except ValueError:
        raise ConfigError(
            f"USER_DAILY_BUDGET_USD={raw!r} is invalid; expected US dollars, e.g. 5 or 2.50"
        ) from None
    return value


def _ops_token_hash(env: Mapping[str, str]) -> str | None:
    token = env.get("OPS_TOKEN", "").strip()
    return hash_token(token) if token else None


def _ops_bind(env: Mapping[str, str]) -> str | None:
    raw = env.get("OPS_BIND", "").strip()
    if not raw:
        return None
    _host, sep, port = raw.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"OPS_BIND={raw!r} is invalid; expected host:port, e.g. 127.0.0.1:9100")
    return raw
