"""`make serve` (`python -m kvconsole.serve`): the production server.

Loads the settings in production mode (which refuse development defaults), migrates the
database, collects the static files for WhiteNoise, empties the directory where the workers
keep their metrics, then becomes granian: several worker processes, HTTPS with the given
certificate, or plain HTTP only behind a trusted proxy. Workers that die are started again.
"""

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured


def granian_command(environ: Mapping[str, str]) -> list[str]:
    """granian's command line for this environment; ImproperlyConfigured names what is
    missing or contradictory."""
    certificate = environ.get("KVCONSOLE_TLS_CERT", "")
    private_key = environ.get("KVCONSOLE_TLS_KEY", "")
    if bool(certificate) != bool(private_key):
        raise ImproperlyConfigured(
            "Set both KVCONSOLE_TLS_CERT and KVCONSOLE_TLS_KEY (a PEM certificate chain and "
            "its PKCS#8 private key), or neither to serve plain HTTP behind a proxy."
        )
    if not certificate and not environ.get("KVCONSOLE_TRUSTED_PROXIES", "").strip():
        raise ImproperlyConfigured(
            "No certificate: plain HTTP is served only behind a proxy that terminates TLS. "
            "Set KVCONSOLE_TLS_CERT and KVCONSOLE_TLS_KEY, or KVCONSOLE_TRUSTED_PROXIES to "
            "the proxy's addresses."
        )
    try:
        workers = int(environ.get("KVCONSOLE_WORKERS") or os.cpu_count() or 1)
        threads = int(environ.get("KVCONSOLE_THREADS") or 4)
        port = int(environ.get("KVCONSOLE_PORT") or 8443)
    except ValueError as error:
        raise ImproperlyConfigured(
            f"KVCONSOLE_WORKERS, KVCONSOLE_THREADS and KVCONSOLE_PORT are numbers: {error}"
        ) from None
    command = [
        sys.executable,
        "-m",
        "granian",
        "--interface",
        "wsgi",
        "--host",
        environ.get("KVCONSOLE_BIND") or "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--blocking-threads",
        str(threads),
        "--no-ws",
        "--respawn-failed-workers",
        "--respawn-interval",
        "1",
        "--log-level",
        "warning",
    ]
    if certificate:
        command += ["--ssl-certificate", certificate, "--ssl-keyfile", private_key]
    return [*command, "kvconsole.wsgi:application"]


def metrics_directory(path: Path) -> Path:
    """`path`, made ready for prometheus_client's multiprocess mode: created, and emptied of
    the values a previous run left there, which it would otherwise add to this run's."""
    path.mkdir(parents=True, exist_ok=True)
    for left in path.glob("*.db"):
        left.unlink()
    return path


def main() -> None:
    os.environ.setdefault("KVCONSOLE_ENV", "production")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kvconsole.settings")
    try:
        command = granian_command(os.environ)
        import django

        django.setup()
    except ImproperlyConfigured as error:
        sys.exit(f"kvconsole will not start: {error}")
    from django.conf import settings
    from django.core.management import call_command

    from kvconsole import production

    call_command("migrate", interactive=False, verbosity=0)
    missing = production.missing_key_files(
        {name: getattr(settings, name) for name in production.KEY_FILES}
    )
    if missing:
        sys.exit("kvconsole will not start:\n" + "\n".join(f"  - {line}" for line in missing))
    call_command("collectstatic", interactive=False, verbosity=0)
    # Every worker writes its metrics there, and any worker's answer to a scrape adds them up.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(
        metrics_directory(
            Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or settings.VAR_DIR / "metrics")
        )
    )
    # granian takes the place of this process, so a service manager signals it directly.
    os.execv(command[0], command)  # noqa: S606 (the command line is ours, no shell)


if __name__ == "__main__":
    main()
