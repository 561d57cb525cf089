"""Django settings for the RFT studio.

Every setting that differs between machines comes from an environment variable with a
safe default (all listed in README.md). The embedded defaults need no server: SQLite in
WAL mode and a Celery broker on the local filesystem.
"""

import os
import secrets
import tempfile
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from exc


# Production unless told otherwise: `make run` and the tests set DEBUG=1 explicitly.
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",") if h.strip()]
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]

# Uploads, checkpoints, the model cache and the embedded broker's queue live here.
STUDIO_DATA_DIR = Path(os.environ.get("STUDIO_DATA_DIR", BASE_DIR / "data")).resolve()
STUDIO_DATA_DIR.mkdir(parents=True, exist_ok=True)
os.environ.setdefault("STUDIO_DATA_DIR", str(STUDIO_DATA_DIR))  # the trainer reads it too

# --- Secret key: SECRET_KEY, else one generated once and kept in STUDIO_DATA_DIR/secret_key ---
# A generated key survives restarts (sessions stay valid, encrypted judge keys stay readable)
# and is shared by every process and machine that shares STUDIO_DATA_DIR.
KNOWN_INSECURE_KEYS = {"insecure-dev-key-change-me", "change-me", "secret"}
SECRET_KEY_FILE = STUDIO_DATA_DIR / "secret_key"


def _persistent_secret_key(path: Path) -> str:
    if not path.exists():
        tmp = path.with_name(f".secret_key.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(50))
        try:
            os.link(tmp, path)  # atomic, and never replaces a key another process just wrote
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    key = path.read_text().strip()
    if len(key) < 32:
        raise ImproperlyConfigured(f"{path} holds no usable secret key; delete it to make a new one")
    return key


SECRET_KEY = os.environ.get("SECRET_KEY") or _persistent_secret_key(SECRET_KEY_FILE)
if SECRET_KEY in KNOWN_INSECURE_KEYS or len(SECRET_KEY) < 32:
    raise ImproperlyConfigured(
        "SECRET_KEY is a well-known or short value. Set it to a long random string (e.g. "
        "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`), or unset it to use "
        f"the key generated in {SECRET_KEY_FILE}."
    )
# Old keys, comma-separated, still accepted for sessions and for decrypting stored secrets.
SECRET_KEY_FALLBACKS = [k.strip() for k in os.environ.get("SECRET_KEY_FALLBACKS", "").split(",") if k.strip()]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_htmx",
    "axes",
    "webapp.core",
    "webapp.accounts",
    "webapp.projects",
    "webapp.datasets",
    "webapp.graders",
    "webapp.runs",
    "webapp.insights",
    "webapp.reviews",
    "webapp.evals",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "webapp.core.middleware.RejectNulMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks
]

# --- Login throttling (django-axes): failed logins per user name and address ---
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("STUDIO_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("STUDIO_LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "webapp.accounts.views.locked_out"
AXES_HTTP_RESPONSE_CODE = 429
AXES_VERBOSE = False
# Behind a reverse proxy, the client's address is the proxy's unless told how many hops to trust.
AXES_IPWARE_PROXY_COUNT = env_int("STUDIO_TRUSTED_PROXIES", 0) or None
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"] if AXES_IPWARE_PROXY_COUNT else ["REMOTE_ADDR"]
)

# Error pages never show settings, even in DEBUG (a traceback page would list them).
DEFAULT_EXCEPTION_REPORTER_FILTER = "webapp.core.errors.NoSettingsExceptionReporterFilter"

ROOT_URLCONF = "webapp.urls"
WSGI_APPLICATION = "webapp.wsgi.application"

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
            ],
        },
    },
]

# --- Database: SQLite (WAL, busy timeout) by default, PostgreSQL via DATABASE_URL ---
SQLITE_PATH = STUDIO_DATA_DIR / "db.sqlite3"
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{SQLITE_PATH}", conn_max_age=60
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,  # seconds to wait on a locked database (busy timeout)
        "transaction_mode": "IMMEDIATE",  # writers queue up instead of failing mid-transaction
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
    }
    # A file, not memory, so that a worker process started by a test sees the same rows;
    # one per test process, so concurrent test runs never share (and destroy) it.
    DATABASES["default"]["TEST"] = {
        "NAME": str(Path(tempfile.gettempdir()) / f"rft-studio-test-{os.getpid()}.sqlite3")
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "projects:list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files: served by the app itself (whitenoise), compressed, hashed names cached ---
STATIC_URL = "static/"
STATIC_ROOT = STUDIO_DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "webapp.core.storage.StudioStaticStorage"},
}
WHITENOISE_USE_FINDERS = True  # works before collectstatic has ever run (tests, by hand)
WHITENOISE_AUTOREFRESH = False  # index the files once at start, not on every request
WHITENOISE_MAX_AGE = 300  # plain names; hashed names are cached for a year (immutable)

# --- Uploads ---
STUDIO_MAX_UPLOAD_BYTES = env_int("STUDIO_MAX_UPLOAD_MB", 100) * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024  # bigger uploads stream to a temp file
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024  # non-file form fields (task editor)
FILE_UPLOAD_TEMP_DIR = None

# --- Grading inside web requests (try it, POST /v1/fine_tuning/alpha/graders/run) ---
# No new criterion starts after this many seconds; longer work belongs on a worker.
STUDIO_GRADE_REQUEST_SECONDS = env_int("STUDIO_GRADE_REQUEST_SECONDS", 20)

# --- Training runs ---
STUDIO_HEARTBEAT_SECONDS = env_int("STUDIO_HEARTBEAT_SECONDS", 10)
STUDIO_WORKER_LOST_SECONDS = env_int("STUDIO_WORKER_LOST_SECONDS", 120)
STUDIO_LOST_CHECK_SECONDS = env_int("STUDIO_LOST_CHECK_SECONDS", 30)  # how often beat looks for lost workers
# Where the training workers train; sizes "auto" launch settings. "auto": like this machine.
# Evaluations load models: they go to the training workers (where the GPUs are) by default.
STUDIO_EVAL_QUEUE = os.environ.get("STUDIO_EVAL_QUEUE", "training").strip() or "training"
# The inference engine (playground, /v1/chat/completions): an OpenAI-compatible server in its own
# process. `transformers` is `transformers serve` (started by `make run`); `vllm` is a vLLM server
# started with --enable-lora (adapters are loaded into it at run time). See README, "Inference".
STUDIO_INFERENCE_URL = os.environ.get(
    "STUDIO_INFERENCE_URL", f"http://127.0.0.1:{os.environ.get('STUDIO_INFERENCE_PORT', '8001')}").rstrip("/")
STUDIO_INFERENCE_ENGINE = os.environ.get("STUDIO_INFERENCE_ENGINE", "transformers").strip().lower()
if STUDIO_INFERENCE_ENGINE not in ("transformers", "vllm"):
    raise ImproperlyConfigured(f"STUDIO_INFERENCE_ENGINE must be transformers or vllm (got {STUDIO_INFERENCE_ENGINE!r})")
STUDIO_INFERENCE_API_KEY = os.environ.get("STUDIO_INFERENCE_API_KEY", "")
STUDIO_INFERENCE_TIMEOUT = env_int("STUDIO_INFERENCE_TIMEOUT", 300)
STUDIO_CHAT_MAX_TOKENS = env_int("STUDIO_CHAT_MAX_TOKENS", 2048)
STUDIO_TRAINING_DEVICE = os.environ.get("STUDIO_TRAINING_DEVICE", "auto").strip().lower()
if STUDIO_TRAINING_DEVICE not in ("auto", "cpu", "cuda"):
    raise ImproperlyConfigured(f"STUDIO_TRAINING_DEVICE must be auto, cpu or cuda (got {STUDIO_TRAINING_DEVICE!r})")

# How many GPUs (processes) of a training worker one run uses: above 1 the training task
# starts torchrun with that many processes (data parallel, see README "Several GPUs per run").
STUDIO_GPUS_PER_RUN = env_int("STUDIO_GPUS_PER_RUN", 1)
if STUDIO_GPUS_PER_RUN < 1:
    raise ImproperlyConfigured(f"STUDIO_GPUS_PER_RUN must be at least 1 (got {STUDIO_GPUS_PER_RUN})")
# How those processes hold the model: "none" (a whole copy each) or "fsdp" (sharded between
# them, for a model whose training state does not fit one GPU; see README "Several GPUs per run").
STUDIO_SHARDING = os.environ.get("STUDIO_SHARDING", "none").strip().lower()
if STUDIO_SHARDING not in ("none", "fsdp"):
    raise ImproperlyConfigured(f"STUDIO_SHARDING must be none or fsdp (got {STUDIO_SHARDING!r})")
if STUDIO_SHARDING == "fsdp" and STUDIO_GPUS_PER_RUN < 2:
    raise ImproperlyConfigured("STUDIO_SHARDING=fsdp shards a run's model over its GPUs: set STUDIO_GPUS_PER_RUN "
                               f"to 2 or more (got {STUDIO_GPUS_PER_RUN})")

# --- Celery: a broker that needs no server by default ---
CELERY_QUEUE_DIR = STUDIO_DATA_DIR / "broker"
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("queue", "processed", "control"):
        (CELERY_QUEUE_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_QUEUE_DIR / "queue"),
        "data_folder_out": str(CELERY_QUEUE_DIR / "queue"),
        "processed_folder": str(CELERY_QUEUE_DIR / "processed"),
        "control_folder": str(CELERY_QUEUE_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.2,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# `celery beat` (a Procfile process) sends the periodic tasks; run exactly one per installation.
CELERY_BEAT_SCHEDULE_FILENAME = str(STUDIO_DATA_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "detect-lost-workers": {
        "task": "webapp.runs.tasks.runs_detect_lost_task",
        "schedule": float(STUDIO_LOST_CHECK_SECONDS),
        # a sweep nobody ran in time is replaced by the next one, not queued up behind it
        "options": {"queue": "default", "expires": float(STUDIO_LOST_CHECK_SECONDS)},
    },
}

# --- REST API ---
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "webapp.accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "webapp.core.api.openai_exception_handler",
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "webapp.core.api.JsonOnlyNegotiation",
    "DEFAULT_PARSER_CLASSES": [
        "webapp.core.jsonsafe.StrictJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"client_errors": {"()": "webapp.core.logging.ClientErrorsWithoutTraceback"}},
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.request": {"handlers": ["console"], "filters": ["client_errors"],
                                   "propagate": False}},
}
