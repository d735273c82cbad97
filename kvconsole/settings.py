"""Settings for kvconsole; every deployment-specific value comes from the environment."""

import os
import secrets
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from kvconsole import production

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("KVCONSOLE_VAR_DIR", BASE_DIR / "var"))
# KVCONSOLE_ENV=production hardens the settings and refuses to start while any development
# default is in force (kvconsole/production.py, checked at the end of this file).
PRODUCTION = production.environment(os.environ) == "production"


def _development_secret(filename: str, make: Callable[[], str]) -> Path:
    """Create a secret file under var/ on first use (mode 0600), like Django's startproject key."""
    path = VAR_DIR / filename
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(make())
    return path


# Off unless asked for: Django's debug pages show a failing request's local variables,
# which in a key service can be plaintext or digests. `make run` turns it on.
DEBUG = os.environ.get("KVCONSOLE_DEBUG", "0") == "1"

SECRET_KEY = os.environ.get("KVCONSOLE_SECRET_KEY") or (
    ""
    if PRODUCTION
    else _development_secret("secret-key", lambda: secrets.token_urlsafe(50)).read_text().strip()
)

ALLOWED_HOSTS = os.environ.get(
    "KVCONSOLE_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],.localhost"
).split(",")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "guardian",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "accounts",
    "vaults",
    "keys",
]

MIDDLEWARE = [
    # Around everything, the vault endpoint included: no Server banner, and a trusted
    # proxy's X-Forwarded-* headers taken as the request's own (only when one is configured).
    "kvconsole.edge.server_header",
    "kvconsole.edge.forwarded_by_trusted_proxy",
    # The probes (/healthz, /readyz) and /metrics on any host; every other request timed,
    # counted and logged as one JSON line.
    "kvconsole.observability.observe",
    # Then: a vault host's requests are the vault endpoint's, served without the rest.
    "kvconsole.hosts.vault_hosts",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    # Every view needs a signed-in person unless it is marked login_not_required (the
    # sign-in pages, and any endpoint that authenticates its callers another way); htmx
    # requests are sent to sign in with the whole page.
    "kvconsole.console.SignInRequiredMiddleware",
    # Superusers, and whoever has enrolled an authenticator, also need its code.
    "vaults.twofactor.TwoFactorRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # A service's refusal raised through a console view becomes its message.
    "kvconsole.console.ServiceErrorMiddleware",
    "kvconsole.middleware.activity_context",
    # Last, as django-axes asks: it turns a lockout found while the view ran into the lockout
    # page. Sign-in records are written during the view, inside activity_context.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "kvconsole.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.csp",
                "kvconsole.context_processors.deployment",
            ],
        },
    },
]

WSGI_APPLICATION = "kvconsole.wsgi.application"

DATABASES: dict[str, Any] = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("KVCONSOLE_SQLITE_PATH", VAR_DIR / "kvconsole.sqlite3"),
        "OPTIONS": {
            # IMMEDIATE takes the write lock at BEGIN, so two writers never deadlock on a
            # lock upgrade; WAL lets readers run beside the one writer. NORMAL sync in WAL
            # mode never corrupts the database and spares an fsync per commit. Every call
            # appends to the activity log, touching the same index pages again and again, so
            # a checkpoint every 10,000 pages (about 40 MB of log) rather than SQLite's
            # 1,000 copies each page once where it would copy it many times.
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": (
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; "
                "PRAGMA wal_autocheckpoint=10000;"
            ),
        },
        "TEST": {"NAME": os.environ.get("KVCONSOLE_TEST_SQLITE_PATH")},
        # Kept open across requests: opening one (its PRAGMAs, reading the schema) costs
        # more than a key operation.
        "CONN_MAX_AGE": None,
    }
}
# DATABASE_URL selects PostgreSQL instead (psycopg 3): postgres://user:password@host:port/name,
# or for a unix socket its directory as the host, percent-encoded:
# postgres://user@%2Frun%2Fpostgresql/name.
if _database_url := os.environ.get("DATABASE_URL", ""):
    DATABASES["default"] = dj_database_url.parse(
        _database_url,
        # Each server thread keeps its connection (opening one costs more than a key
        # operation) and checks it before a request reuses it, so a restarted database
        # fails no request that could have had a fresh connection.
        conn_max_age=int(os.environ.get("KVCONSOLE_DATABASE_CONN_MAX_AGE", "600")),
        conn_health_checks=True,
    )
    if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured(
            "DATABASE_URL must be a postgres:// URL; leave it unset to use SQLite."
        )
    # Parameters bound by the server, and a statement run five times on a connection
    # prepared there: every key operation runs the same few statements (the activity
    # INSERT above all), which then cost the worker about a third less CPU than when psycopg
    # interpolates and the server parses each one; `make load` answers 40-55% more requests.
    # A pooler between must keep prepared statements (PgBouncer 1.21+ does). Options in
    # the URL's query (sslmode=...) are kept, and win.
    DATABASES["default"]["OPTIONS"] = {
        "server_side_binding": True,
        "prepare_threshold": 5,
        **DATABASES["default"].get("OPTIONS", {}),
    }

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    # First, so that a locked-out client is refused before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    "accounts.backends.PrincipalBackend",
    "guardian.backends.ObjectPermissionBackend",
]
GUARDIAN_USER_OBJ_PERMS_MODEL = "guardian.UserObjectPermission"
GUARDIAN_GROUP_OBJ_PERMS_MODEL = "guardian.GroupObjectPermission"
ANONYMOUS_USER_NAME = None

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# A console request with a stale CSRF token: an alert for htmx, Django's page otherwise.
CSRF_FAILURE_VIEW = "kvconsole.console.csrf_failure"
LOGIN_URL = "signin"
LOGIN_REDIRECT_URL = "/"

# Sign-in throttling (django-axes): after KVCONSOLE_LOGIN_FAILURE_LIMIT failures for one user
# name from one address, that pair is refused for the cool-off, whatever the password.
AXES_FAILURE_LIMIT = int(os.environ.get("KVCONSOLE_LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("KVCONSOLE_LOGIN_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# A fixed cool-off: attempts made while locked out neither count nor extend it, so someone
# guessing at a name cannot keep its owner out indefinitely.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_CLIENT_IP_CALLABLE = "kvconsole.middleware.client_ip"
AXES_USERNAME_CALLABLE = "vaults.signals.axes_username"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_HTTP_RESPONSE_CODE = 429
# Sign-ins are recorded in the activity log; a second log of them would only drift from it.
AXES_DISABLE_ACCESS_LOG = True

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
# Files are served from the app directories (no collectstatic step); the empty root keeps
# WhiteNoise from warning that it is missing.
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
WHITENOISE_USE_FINDERS = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Sessions end after KVCONSOLE_SESSION_IDLE_MINUTES without a request (each request renews
# the expiry) and when the browser closes.
SESSION_COOKIE_AGE = int(os.environ.get("KVCONSOLE_SESSION_IDLE_MINUTES", "30")) * 60
SESSION_SAVE_EVERY_REQUEST = True
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# The console's pages carry the CSRF token (htmx sends it from the page): no script reads
# the cookie.
CSRF_COOKIE_HTTPONLY = True
# Cookies travel over HTTPS only (`make run` serves HTTPS too); KVCONSOLE_SECURE_COOKIES=0
# allows them over plain HTTP, behind a proxy that terminates TLS on the same machine.
_secure_cookies = os.environ.get("KVCONSOLE_SECURE_COOKIES", "1") == "1"
SESSION_COOKIE_SECURE = _secure_cookies
CSRF_COOKIE_SECURE = _secure_cookies
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CSP = {
    "default-src": ["'self'"],
    "frame-ancestors": ["'none'"],
    "form-action": ["'self'"],
    "base-uri": ["'self'"],
    "object-src": ["'none'"],
}

# One JSON line per request and per committed activity entry, in Azure's resource-log fields
# (kvconsole/jsonlog.py): on a server's standard output (kvconsole/wsgi.py), elsewhere on
# standard error, where they stay out of the CLI's answers. KVCONSOLE_JSON_LOGS=0: none.
KVCONSOLE_JSON_LOGS = os.environ.get("KVCONSOLE_JSON_LOGS", "1") == "1"
_json_lines = {
    "handlers": ["json_lines"],
    "level": "INFO" if KVCONSOLE_JSON_LOGS else "WARNING",
    "propagate": False,
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json_lines": {"()": "kvconsole.jsonlog.JsonLines"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler"},
        "json_lines": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stderr",
            "formatter": "json_lines",
        },
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        # Refusals (401 challenges, 404s) are the vault endpoint's everyday answers, and each
        # is in the activity log; only server errors are worth a log line here.
        "django.request": {"level": "ERROR"},
        "kvconsole.requests": _json_lines,
        "kvconsole.activity": _json_lines,
    },
}
# Who may read /metrics (kvconsole/observability.py): callers from these networks (addresses
# or CIDR networks, comma-separated), or bearing this token. Neither set: nobody.
KVCONSOLE_METRICS_NETWORKS = [
    network.strip()
    for network in os.environ.get("KVCONSOLE_METRICS_NETWORKS", "").split(",")
    if network.strip()
]
KVCONSOLE_METRICS_TOKEN = os.environ.get("KVCONSOLE_METRICS_TOKEN", "")

# --- kvconsole -------------------------------------------------------------------------

# Moves the time the services go by (kvconsole/clock.py): an ISO-8601 duration such as P40D,
# to show rotation, expiry and purge schedules without waiting. Never in production.
KVCONSOLE_CLOCK_OFFSET = os.environ.get("KVCONSOLE_CLOCK_OFFSET", "")
KVCONSOLE_DEPLOYMENT_NAME = os.environ.get("KVCONSOLE_DEPLOYMENT_NAME", "kvconsole (development)")
# Shown in resource ids; one deployment is one Azure-style subscription.
KVCONSOLE_SUBSCRIPTION_ID = os.environ.get(
    "KVCONSOLE_SUBSCRIPTION_ID", "00000000-0000-0000-0000-000000000000"
)
KVCONSOLE_VAULT_HOST_SUFFIX = os.environ.get("KVCONSOLE_VAULT_HOST_SUFFIX", "vault.localhost")
KVCONSOLE_VAULT_PORT = int(os.environ.get("KVCONSOLE_VAULT_PORT", "8443"))
# Where clients reach the console, and with it the token service (the authority).
KVCONSOLE_CONSOLE_HOST = os.environ.get(
    "KVCONSOLE_CONSOLE_HOST", f"localhost:{KVCONSOLE_VAULT_PORT}"
)
# The directory tenant the token service speaks for; clients name it (tenant_id).
KVCONSOLE_TENANT_ID = os.environ.get("KVCONSOLE_TENANT_ID") or (
    ""
    if PRODUCTION
    else _development_secret("tenant-id", lambda: str(uuid.uuid4())).read_text().strip()
)
KVCONSOLE_TOKEN_KEY_FILE = Path(
    os.environ.get("KVCONSOLE_TOKEN_KEY_FILE") or VAR_DIR / "token-signing-keys.json"
)
KVCONSOLE_TOKEN_LIFETIME_SECONDS = int(os.environ.get("KVCONSOLE_TOKEN_LIFETIME_SECONDS", "3600"))
# Vault endpoint requests larger than this are refused unread; a backup of a key with the
# maximum of 500 RSA-4096 versions fits.
KVCONSOLE_MAX_REQUEST_BYTES = int(os.environ.get("KVCONSOLE_MAX_REQUEST_BYTES", str(4 << 20)))
DATA_UPLOAD_MAX_MEMORY_SIZE = KVCONSOLE_MAX_REQUEST_BYTES

KVCONSOLE_MASTER_KEY_FILE = Path(
    os.environ.get("KVCONSOLE_MASTER_KEY_FILE") or VAR_DIR / "master-keys.json"
)
KVCONSOLE_BACKUP_KEY_FILE = Path(
    os.environ.get("KVCONSOLE_BACKUP_KEY_FILE") or VAR_DIR / "backup-key.json"
)
# A development deployment creates its own key files on first use. Anywhere else set this
# to 0 and provide the files: a lost file that is silently replaced orphans every key.
KVCONSOLE_GENERATE_KEY_FILES = (
    os.environ.get("KVCONSOLE_GENERATE_KEY_FILES", "0" if PRODUCTION else "1") == "1"
)

KVCONSOLE_KEY_CACHE_SIZE = int(os.environ.get("KVCONSOLE_KEY_CACHE_SIZE", "1024"))
KVCONSOLE_MAX_BACKUP_VERSIONS = 500

# --- alerts: delivering notifications (vaults/delivery.py) -----------------------------

# Each webhook's signing secret is derived from this key and the rule (vaults/webhooks.py).
KVCONSOLE_WEBHOOK_KEY_FILE = Path(
    os.environ.get("KVCONSOLE_WEBHOOK_KEY_FILE") or VAR_DIR / "webhook-key.json"
)
# A PEM bundle of private CAs that webhook receivers' certificates may also chain to.
KVCONSOLE_WEBHOOK_CA_FILE = os.environ.get("KVCONSOLE_WEBHOOK_CA_FILE", "")
# Attempts before a notification is dead-lettered; retries wait a random time up to
# base * 2^(attempt - 1), at most the cap (exponential backoff with full jitter).
KVCONSOLE_ALERT_MAX_ATTEMPTS = int(os.environ.get("KVCONSOLE_ALERT_MAX_ATTEMPTS", "8"))
KVCONSOLE_ALERT_BACKOFF_BASE_SECONDS = float(
    os.environ.get("KVCONSOLE_ALERT_BACKOFF_BASE_SECONDS", "60")
)
KVCONSOLE_ALERT_BACKOFF_CAP_SECONDS = float(
    os.environ.get("KVCONSOLE_ALERT_BACKOFF_CAP_SECONDS", "21600")
)
# Per network step of a webhook request (connect, send, each read).
KVCONSOLE_ALERT_TIMEOUT_SECONDS = float(os.environ.get("KVCONSOLE_ALERT_TIMEOUT_SECONDS", "10"))
# Deliveries at once, at most this many of them to one endpoint, and rows per delivery lane.
KVCONSOLE_ALERT_CONCURRENCY = int(os.environ.get("KVCONSOLE_ALERT_CONCURRENCY", "16"))
KVCONSOLE_ALERT_LANES_PER_ENDPOINT = int(os.environ.get("KVCONSOLE_ALERT_LANES_PER_ENDPOINT", "4"))
KVCONSOLE_ALERT_LANE_ROWS = int(os.environ.get("KVCONSOLE_ALERT_LANE_ROWS", "10"))
# How often `kv deliver --loop` looks for notifications that fell due.
KVCONSOLE_ALERT_POLL_SECONDS = float(os.environ.get("KVCONSOLE_ALERT_POLL_SECONDS", "1"))

# Email alerts go through this SMTP server (Django's mailers). Without a port: 25, or 587
# with STARTTLS, or 465 with implicit TLS.
_email_port = os.environ.get("KVCONSOLE_EMAIL_PORT", "")
MAILERS = {
    "default": {
        "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "OPTIONS": {
            "host": os.environ.get("KVCONSOLE_EMAIL_HOST", "localhost"),
            "port": int(_email_port) if _email_port else None,
            "username": os.environ.get("KVCONSOLE_EMAIL_USER", ""),
            "password": os.environ.get("KVCONSOLE_EMAIL_PASSWORD", ""),
            "use_tls": os.environ.get("KVCONSOLE_EMAIL_STARTTLS", "0") == "1",
            "use_ssl": os.environ.get("KVCONSOLE_EMAIL_SSL", "0") == "1",
            "timeout": float(os.environ.get("KVCONSOLE_EMAIL_TIMEOUT_SECONDS", "10")),
        },
    }
}
DEFAULT_FROM_EMAIL = os.environ.get("KVCONSOLE_EMAIL_FROM", "kvconsole@localhost")

# --- serving and hardening (kvconsole/production.py, kvconsole/edge.py) ----------------

# The proxies in front of the server (addresses or CIDR networks, comma-separated). Only a
# request whose peer is one of them has its X-Forwarded-For, -Proto and -Host believed.
KVCONSOLE_TRUSTED_PROXIES = [
    proxy.strip()
    for proxy in os.environ.get("KVCONSOLE_TRUSTED_PROXIES", "").split(",")
    if proxy.strip()
]
# HSTS on the console and every vault host. None in development: browsers would then insist
# on HTTPS for every port of localhost.
SECURE_HSTS_SECONDS = int(
    os.environ.get("KVCONSOLE_HSTS_SECONDS", "31536000" if PRODUCTION else "0")
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
# Asking browsers to preload HSTS commits the whole registrable domain: its owner's call.
SECURE_HSTS_PRELOAD = os.environ.get("KVCONSOLE_HSTS_PRELOAD", "0") == "1"
SECURE_SSL_REDIRECT = PRODUCTION

# Rate limits of the vault endpoint (keys/api/ratelimit.py), in requests per window, shared
# by every server process on the machine through a small file; 0 turns a limit off.
# Defaults are Azure's per-vault figures for software keys, and for a principal across all
# vaults Azure's subscription-wide figure, five times a vault's.
KVCONSOLE_RATE_LIMIT_WINDOW_SECONDS = int(
    os.environ.get("KVCONSOLE_RATE_LIMIT_WINDOW_SECONDS", "10")
)
KVCONSOLE_RATE_LIMIT_VAULT = int(os.environ.get("KVCONSOLE_RATE_LIMIT_VAULT", "4000"))
KVCONSOLE_RATE_LIMIT_VAULT_CREATE = int(os.environ.get("KVCONSOLE_RATE_LIMIT_VAULT_CREATE", "20"))
KVCONSOLE_RATE_LIMIT_PRINCIPAL = int(os.environ.get("KVCONSOLE_RATE_LIMIT_PRINCIPAL", "20000"))
KVCONSOLE_RATE_LIMIT_FILE = Path(
    os.environ.get("KVCONSOLE_RATE_LIMIT_FILE") or VAR_DIR / "rate-limits"
)

if PRODUCTION:
    # Collected by `make serve` (collectstatic), under content-hashed names that browsers
    # may cache for good.
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
    WHITENOISE_USE_FINDERS = False
    if not SECURE_HSTS_PRELOAD:
        SILENCED_SYSTEM_CHECKS = ["security.W021"]
    production.refuse_development_defaults(os.environ, globals())

# Authenticator apps list the deployment by this name.
OTP_TOTP_ISSUER = KVCONSOLE_DEPLOYMENT_NAME
