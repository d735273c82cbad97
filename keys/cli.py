"""`kv key ...`, `kv master-key ...`, `kv rotate-due` and `kv check-expiry`: parse, call the
services, shape the result."""

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.db import DatabaseError
from rich.progress import Progress

from kvconsole.cli import (
    Invocation,
    ReportedFailure,
    add_tags,
    base64_bytes,
    boolean,
    group,
    leaf,
    moment,
    render,
    tags,
)
from kvconsole.errors import BadParameter, NotFound, ServiceError
from vaults import selectors as vault_selectors

from . import crypto, selectors, services, shapes
from .models import KEY_OPERATIONS, KeyVersion


def register(commands: Any) -> None:
    _register_keys(group(commands, "key", "Manage and use keys."))
    key_files = group(commands, "key-files", "Manage the deployment's key files.")
    leaf(
        key_files,
        "create",
        _key_files_create,
        "Create whichever key files are missing (never replacing one): once, before a "
        "production deployment's first start.",
    )
    master = group(commands, "master-key", "Manage the deployment master key.")
    rotate = leaf(
        master,
        "rotate",
        _master_key_rotate,
        "Re-wrap every data key under a new master key; rerun to resume an interrupted run.",
    )
    rotate.add_argument("--batch-size", type=int, default=500)
    rotate_due = leaf(
        commands,
        "rotate-due",
        _rotate_due,
        "Rotate every key whose rotation policy says it is due (for cron).",
        columns=_ROTATE_DUE_COLUMNS,
    )
    rotate_due.add_argument("--vault", help="Only the keys of this vault.")
    rotate_due.add_argument(
        "--dry-run", action="store_true", help="List the keys due without rotating them."
    )
    check_expiry = leaf(
        commands,
        "check-expiry",
        _check_expiry,
        "Raise KeyNearExpiry and KeyExpired for keys' current versions, once each (for cron).",
    )
    check_expiry.add_argument("--vault", help="Only the keys of this vault.")
    check_expiry.add_argument(
        "--dry-run", action="store_true", help="List the notices due without raising them."
    )


def _key_parser(
    commands: Any,
    name: str,
    handler: Any,
    help_text: str,
    *,
    version: bool = False,
    columns: tuple[str, ...] = (),
) -> argparse.ArgumentParser:
    parser = leaf(commands, name, handler, help_text, columns=columns)
    parser.add_argument("--vault-name", required=True)
    parser.add_argument("--name", "-n", required=True, help="The key name.")
    if version:
        parser.add_argument("--version", "-v", help="Default: the current version.")
    return parser


def _attribute_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ops", nargs="+", choices=KEY_OPERATIONS, help="Permitted operations.")
    parser.add_argument("--expires", type=moment, help="Expiry (exp), ISO-8601.")
    parser.add_argument("--not-before", type=moment, help="Activation (nbf), ISO-8601.")
    add_tags(parser)


def _register_keys(commands: Any) -> None:
    item_columns = ("kid", "attributes.enabled", "attributes.exp")
    create = _key_parser(commands, "create", _create, "Create a key or a new version of one.")
    create.add_argument("--kty", default="RSA", help="RSA, EC or oct (default RSA).")
    create.add_argument("--size", type=int, help="RSA: 2048, 3072, 4096; oct: 128, 192, 256.")
    create.add_argument("--curve", choices=crypto.EC_CURVES)
    create.add_argument("--protection", choices=["software", "hsm"], default="software")
    create.add_argument("--disabled", type=boolean, default=False)
    _attribute_options(create)

    imported = _key_parser(commands, "import", _import, "Import a private key (PEM or JWK).")
    source = imported.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", "-f", type=Path, help="A PEM file or a JWK JSON file.")
    source.add_argument("--pem-file", type=Path)
    # Key material and passwords come from files only: the command line shows up in `ps`.
    imported.add_argument("--pem-password-file", type=Path, help="A file holding the password.")
    imported.add_argument("--protection", choices=["software", "hsm"], default="software")
    imported.add_argument("--disabled", type=boolean, default=False)
    _attribute_options(imported)

    listing = leaf(commands, "list", _list, "List keys.", columns=item_columns)
    listing.add_argument("--vault-name", required=True)
    _key_parser(commands, "list-versions", _list_versions, "List versions.", columns=item_columns)
    _key_parser(commands, "show", _show, "Show a key's public part.", version=True)
    update = _key_parser(
        commands, "set-attributes", _set_attributes, "Change a version's attributes.", version=True
    )
    update.add_argument("--enabled", type=boolean)
    _attribute_options(update)
    _key_parser(commands, "rotate", _rotate, "Create a new version with fresh material.")
    policies = group(commands, "rotation-policy", "Show or set a key's rotation policy.")
    _key_parser(policies, "show", _policy_show, "Show a key's rotation policy.")
    update_policy = _key_parser(policies, "update", _policy_update, "Set a key's rotation policy.")
    update_policy.add_argument(
        "--value",
        required=True,
        help="The policy as Azure's JSON (lifetimeActions, attributes.expiryTime): @FILE or "
        "the JSON itself.",
    )
    revert = _key_parser(
        commands, "revert", _revert, "Make a new current version from an earlier version."
    )
    revert.add_argument("--version", "-v", required=True)
    _key_parser(commands, "delete", _delete, "Soft-delete a key.")
    deleted = leaf(
        commands,
        "list-deleted",
        _list_deleted,
        "List soft-deleted keys.",
        columns=("recoveryId", "deletedDate", "scheduledPurgeDate"),
    )
    deleted.add_argument("--vault-name", required=True)
    _key_parser(commands, "show-deleted", _show_deleted, "Show a soft-deleted key.")
    _key_parser(commands, "recover", _recover, "Recover a soft-deleted key.")
    _key_parser(commands, "purge", _purge, "Permanently delete a soft-deleted key.")
    backup = _key_parser(commands, "backup", _backup, "Back up every version of a key to a file.")
    backup.add_argument("--file", "-f", type=Path, required=True)
    restore = leaf(commands, "restore", _restore, "Restore a key backup into a vault.")
    restore.add_argument("--vault-name", required=True)
    restore.add_argument("--file", "-f", type=Path, required=True)

    for name, (service, inputs, help_text) in _CRYPTO_COMMANDS.items():
        parser = _key_parser(
            commands, name, _crypto_handler(service, inputs), help_text, version=True
        )
        parser.add_argument("--algorithm", "-a", required=True)
        for option in inputs.values():
            parser.add_argument(
                f"--{option}",
                type=base64_bytes,
                required=option in _REQUIRED_INPUTS,
                help=_INPUT_HELP[option],
            )
    verify = _key_parser(commands, "verify", _verify, "Verify a signature.", version=True)
    verify.add_argument("--algorithm", "-a", required=True)
    verify.add_argument("--digest", type=base64_bytes, required=True, help=_INPUT_HELP["digest"])
    verify.add_argument("--signature", type=base64_bytes, required=True, help="Base64 signature.")


def _bundle(version: KeyVersion) -> dict[str, Any]:
    return shapes.key_bundle(version, version.key.vault.uri)


def _kty(kty: str, protection: str) -> str:
    return f"{kty}-HSM" if protection == "hsm" and not kty.endswith("-HSM") else kty


def _create(run: Invocation) -> Any:
    options = run.options
    return _bundle(
        services.key_create(
            actor=run.actor,
            vault_name=options.vault_name,
            name=options.name,
            kty=_kty(options.kty, options.protection),
            size=options.size,
            curve=options.curve,
            key_ops=options.ops,
            enabled=not options.disabled,
            not_before=options.not_before,
            expires=options.expires,
            tags=tags(options.tags),
        )
    )


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise BadParameter(f"Cannot read {path}: {error.strerror}.") from None


def _import(run: Invocation) -> Any:
    options = run.options
    jwk, pem = None, None
    content = _read(options.file or options.pem_file)
    if options.file is not None and content.lstrip().startswith(b"{"):
        try:
            jwk = json.loads(content)
        except ValueError:
            raise BadParameter(f"{options.file} is neither PEM nor JWK JSON.") from None
    else:
        pem = content
    password = options.pem_password_file
    return _bundle(
        services.key_import(
            actor=run.actor,
            vault_name=options.vault_name,
            name=options.name,
            jwk=jwk,
            pem=pem,
            pem_password=_read(password).rstrip(b"\r\n") if password else None,
            hsm=options.protection == "hsm",
            key_ops=options.ops,
            enabled=not options.disabled,
            not_before=options.not_before,
            expires=options.expires,
            tags=tags(options.tags),
        )
    )


def _list(run: Invocation) -> Any:
    keys = services.key_list(actor=run.actor, vault_name=run.options.vault_name)
    return [shapes.key_item(key, key.vault.uri) for key in keys]


def _list_versions(run: Invocation) -> Any:
    options = run.options
    versions = services.key_list_versions(
        actor=run.actor, vault_name=options.vault_name, name=options.name
    )
    return [shapes.version_item(version, version.key.vault.uri) for version in versions]


def _show(run: Invocation) -> Any:
    options = run.options
    return _bundle(
        services.key_get(
            actor=run.actor,
            vault_name=options.vault_name,
            name=options.name,
            version=options.version,
        )
    )


def _set_attributes(run: Invocation) -> Any:
    options = run.options
    changes: dict[str, Any] = {}
    if options.not_before is not None:
        changes["not_before"] = options.not_before
    if options.expires is not None:
        changes["expires"] = options.expires
    return _bundle(
        services.key_update(
            actor=run.actor,
            vault_name=options.vault_name,
            name=options.name,
            version=options.version,
            enabled=options.enabled,
            key_ops=options.ops,
            tags=tags(options.tags),
            **changes,
        )
    )


def _policy_show(run: Invocation) -> Any:
    shown = services.key_rotation_policy_get(
        actor=run.actor, vault_name=run.options.vault_name, name=run.options.name
    )
    return shapes.rotation_policy(shown, shown.key.vault.uri)


def _policy_update(run: Invocation) -> Any:
    value = run.options.value
    if value.startswith("@"):
        try:
            value = Path(value[1:]).read_text()
        except OSError as error:
            raise BadParameter(f"Cannot read {value[1:]}: {error.strerror}.") from None
    try:
        policy = json.loads(value)
    except ValueError:
        raise BadParameter("--value is not valid JSON.") from None
    if not isinstance(policy, dict):
        raise BadParameter("--value must be a JSON object with lifetimeActions.")
    attributes = policy.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise BadParameter("attributes must be a JSON object (with expiryTime).")
    shown = services.key_rotation_policy_set(
        actor=run.actor,
        vault_name=run.options.vault_name,
        name=run.options.name,
        lifetime_actions=policy.get("lifetimeActions"),
        expiry_time=attributes.get("expiryTime"),
    )
    return shapes.rotation_policy(shown, shown.key.vault.uri)


def _rotate(run: Invocation) -> Any:
    options = run.options
    return _bundle(
        services.key_rotate(actor=run.actor, vault_name=options.vault_name, name=options.name)
    )


def _revert(run: Invocation) -> Any:
    options = run.options
    return _bundle(
        services.key_revert(
            actor=run.actor,
            vault_name=options.vault_name,
            name=options.name,
            version=options.version,
        )
    )


def _delete(run: Invocation) -> Any:
    options = run.options
    key = services.key_delete(actor=run.actor, vault_name=options.vault_name, name=options.name)
    return shapes.deleted_key_bundle(key, key.vault.uri)


def _list_deleted(run: Invocation) -> Any:
    keys = services.key_list_deleted(actor=run.actor, vault_name=run.options.vault_name)
    return [shapes.deleted_key_item(key, key.vault.uri) for key in keys]


def _show_deleted(run: Invocation) -> Any:
    options = run.options
    key = services.key_get_deleted(
        actor=run.actor, vault_name=options.vault_name, name=options.name
    )
    return shapes.deleted_key_bundle(key, key.vault.uri)


def _recover(run: Invocation) -> Any:
    options = run.options
    return _bundle(
        services.key_recover(actor=run.actor, vault_name=options.vault_name, name=options.name)
    )


def _purge(run: Invocation) -> Any:
    options = run.options
    services.key_purge(actor=run.actor, vault_name=options.vault_name, name=options.name)


def _backup(run: Invocation) -> Any:
    options = run.options
    path: Path = options.file
    if path.exists():
        raise BadParameter(f"{path} already exists; choose a new file for the backup.")
    blob = services.key_backup(actor=run.actor, vault_name=options.vault_name, name=options.name)
    try:
        with path.open("xb") as handle:
            handle.write(blob)
    except OSError as error:
        raise BadParameter(f"Cannot write {path}: {error.strerror}.") from None
    return {"file": str(path), "bytes": len(blob)}


def _restore(run: Invocation) -> Any:
    options = run.options
    return _bundle(
        services.key_restore(
            actor=run.actor, vault_name=options.vault_name, blob=_read(options.file)
        )
    )


# Each operation: the service, its byte inputs (service parameter -> CLI option), its help.
_CRYPTO_COMMANDS: dict[str, tuple[Callable[..., services.OperationResult], dict[str, str], str]] = {
    "encrypt": (
        services.key_encrypt,
        {"plaintext": "value", "iv": "iv", "aad": "aad"},
        "Encrypt with a key.",
    ),
    "decrypt": (
        services.key_decrypt,
        {"ciphertext": "value", "iv": "iv", "tag": "tag", "aad": "aad"},
        "Decrypt with a key.",
    ),
    "sign": (services.key_sign, {"digest": "digest"}, "Sign a digest."),
    "wrap": (services.key_wrap, {"key": "value"}, "Wrap a key."),
    "unwrap": (services.key_unwrap, {"encrypted_key": "value"}, "Unwrap a key."),
}
_REQUIRED_INPUTS = {"value", "digest"}
_INPUT_HELP = {
    "value": "Base64 data.",
    "digest": "Base64 digest.",
    "iv": "Base64 IV (AES-CBC; GCM decrypt).",
    "tag": "Base64 tag (AES-GCM decrypt).",
    "aad": "Base64 additional authenticated data (AES-GCM).",
}


def _crypto_handler(
    service: Callable[..., services.OperationResult], inputs: dict[str, str]
) -> Callable[[Invocation], Any]:
    def handle(run: Invocation) -> Any:
        options = run.options
        result = service(
            actor=run.actor,
            vault_name=options.vault_name,
            name=options.name,
            version=options.version,
            algorithm=options.algorithm,
            **{parameter: getattr(options, option) for parameter, option in inputs.items()},
        )
        return shapes.operation_result(result, result.version.key.vault.uri)

    return handle


def _verify(run: Invocation) -> Any:
    options = run.options
    result = services.key_verify(
        actor=run.actor,
        vault_name=options.vault_name,
        name=options.name,
        version=options.version,
        algorithm=options.algorithm,
        digest=options.digest,
        signature=options.signature,
    )
    return {"value": result.valid}


def _key_files_create(run: Invocation) -> Any:
    return services.key_files_create(actor=run.actor)


def _master_key_rotate(run: Invocation) -> Any:
    if sys.stderr.isatty():
        with Progress(transient=True) as progress:
            task = progress.add_task("Re-wrapping data keys", total=None)
            rotation = services.master_key_rotate(
                actor=run.actor,
                batch_size=run.options.batch_size,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
    else:
        rotation = services.master_key_rotate(actor=run.actor, batch_size=run.options.batch_size)
    return {
        "primaryKeyId": rotation.primary,
        "rewrapped": rotation.rewrapped,
        "resumed": rotation.resumed,
    }


def _check_expiry(run: Invocation) -> Any:
    check = services.key_check_expiry(
        actor=run.actor, vault_name=run.options.vault, dry_run=run.options.dry_run
    )
    return {
        "dryRun": check.dry_run,
        "checked": check.checked,
        "nearExpiry": [_notice(notice) for notice in check.near_expiry],
        "expired": [_notice(notice) for notice in check.expired],
    }


def _notice(notice: services.ExpiryNotice) -> dict[str, Any]:
    version = notice.version
    assert version.expires is not None
    shown = {
        "vault": version.key.vault.name,
        "key": version.key.name,
        "version": version.version,
        "exp": version.expires.isoformat(),
    }
    if notice.threshold:
        shown["timeBeforeExpiry"] = notice.threshold
    return shown


_ROTATE_DUE_COLUMNS = ("vault", "key", "result", "version", "newVersion", "dueSince")
_ROTATE_DUE_COUNTS = ("checked", "due", "rotated", "skipped", "failed")


class _RotationReport:
    """What `kv rotate-due` did with each due key, and its counts.

    Unless a person watches (a terminal) or asked for a table, the JSON is written as the
    run goes, one entry per due key: memory stays flat over any number of keys, and a run
    killed half-way has still said what it did.
    """

    def __init__(self, run: Invocation, *, stream: bool) -> None:
        self.run = run
        self.counts = dict.fromkeys(_ROTATE_DUE_COUNTS, 0)
        self.streamed = stream
        self.kept: list[dict[str, Any]] = []
        if stream:
            dry_run = json.dumps(run.options.dry_run)
            run.stdout.write(f'{{"dryRun": {dry_run}, "keys": [\n')

    def add(self, result: str, scheduled: selectors.ScheduledRotation, **details: str) -> None:
        """One due key's entry; `result` is rotated, skipped, failed, or due (a dry run)."""
        self.counts["due"] += 1
        if result != "due":
            self.counts[result] += 1
        version = scheduled.key.current_version
        assert version is not None and scheduled.due_at is not None
        entry = {
            "vault": scheduled.key.vault.name,
            "key": scheduled.key.name,
            "result": result,
            "version": version.version,
            "dueSince": scheduled.due_at.isoformat(),
            **details,
        }
        if not self.streamed:
            self.kept.append(entry)
            return
        # Whole lines, the separator leading: nothing is written ahead of what it follows.
        separator = ", " if self.counts["due"] > 1 else "  "
        self.run.stdout.write(f"{separator}{json.dumps(entry)}\n")
        self.run.stdout.flush()

    def finish(self) -> None:
        stdout, options = self.run.stdout, self.run.options
        if self.streamed:
            counts = json.dumps(self.counts)[1:-1]
            stdout.write(f"], {counts}}}\n")
        elif options.output == "table":
            render(self.kept, output="table", columns=_ROTATE_DUE_COLUMNS, stream=stdout)
            render(self.counts, output="table", columns=(), stream=stdout)
        else:
            summary = {"dryRun": options.dry_run, "keys": self.kept, **self.counts}
            render(summary, output="json", columns=(), stream=stdout)
        if self.counts["failed"]:
            raise ReportedFailure(
                f"{self.counts['failed']} of {self.counts['due']} due keys failed to rotate."
            )


def _rotate_due(run: Invocation) -> None:
    options = run.options
    if options.vault is not None and not (
        vault_selectors.vault_list(actor=run.actor, key_users=True)
        .filter(name=options.vault.lower())
        .exists()
    ):
        raise NotFound(f"Vault '{options.vault}' was not found.", code="VaultNotFound")
    watched = run.stdout.isatty()
    report = _RotationReport(run, stream=not watched and options.output == "json")
    schedule = selectors.key_rotation_schedule(actor=run.actor, vault_name=options.vault)
    if not watched:
        for scheduled in schedule:
            _rotate_if_due(run, scheduled, report)
    else:
        candidates = selectors.key_rotation_candidates(actor=run.actor, vault_name=options.vault)
        with Progress(transient=True) as progress:
            task = progress.add_task(
                "Checking keys" if options.dry_run else "Rotating due keys",
                total=candidates.count(),
            )
            for scheduled in schedule:
                _rotate_if_due(run, scheduled, report)
                progress.advance(task)
    report.finish()


def _rotate_if_due(
    run: Invocation, scheduled: selectors.ScheduledRotation, report: _RotationReport
) -> None:
    report.counts["checked"] += 1
    if not scheduled.due:
        return
    if run.options.dry_run:
        report.add("due", scheduled)
        return
    key = scheduled.key
    try:
        version = services.key_rotate_if_due(
            actor=run.actor, vault_name=key.vault.name, name=key.name
        )
    except ServiceError as error:
        report.add("failed", scheduled, code=error.code, message=error.message)
        return
    except DatabaseError as error:
        # A busy or lost database fails this key; the next cron run tries it again.
        report.add("failed", scheduled, code=type(error).__name__, message=str(error))
        return
    if version is None:
        # Another run rotated it first, or it changed since it was judged due.
        report.add("skipped", scheduled)
    else:
        report.add("rotated", scheduled, newVersion=version.version)
