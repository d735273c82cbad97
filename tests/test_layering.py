"""Dependencies point one way, accounts <- vaults <- keys (DESIGN.md), judged from the import
statements of every module: parsed, not grepped, so that a docstring, a comment or a model
reference by string ("keys.Key", apps.get_model("keys", "Key")) does not count, and an import
inside a function or under TYPE_CHECKING does."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# What each app may not import; everything else (Django, kvconsole, itself) is allowed.
FORBIDDEN = {"accounts": {"vaults", "keys"}, "vaults": {"keys"}, "keys": set[str]()}


def imported_modules(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """The absolute names of the modules `source` (the module `module`) imports."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                assert node.module is not None
                found.add(node.module)
                continue
            base = package[: len(package) - node.level + 1]
            assert base, f"{module}: a relative import reaches above its app"
            if node.module is not None:
                found.add(".".join([*base, node.module]))
            else:
                # `from . import name` may import a submodule: count it as one.
                found.update(".".join([*base, alias.name]) for alias in node.names)
    return found


def modules() -> list[tuple[str, Path]]:
    found: list[tuple[str, Path]] = []
    for app in FORBIDDEN:
        for path in sorted((ROOT / app).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            # A package's own module is named for the package, so relative imports in it
            # resolve from the package itself.
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found.append((".".join(parts), path))
    return found


def test_every_app_has_modules_to_check() -> None:
    names = [name for name, _ in modules()]
    for app in FORBIDDEN:
        assert f"{app}.models" in names


@pytest.mark.parametrize(("module", "path"), modules(), ids=[name for name, _ in modules()])
def test_imports_point_down_the_layers(module: str, path: Path) -> None:
    app = module.split(".")[0]
    imported = imported_modules(
        path.read_text(encoding="utf-8"), module, is_package=path.name == "__init__.py"
    )
    wrong = sorted(name for name in imported if name.split(".")[0] in FORBIDDEN[app])
    assert not wrong, f"{module} imports {', '.join(wrong)}; {app} may not import those"


def test_the_check_sees_every_kind_of_import() -> None:
    source = """
import keys.crypto
from vaults import activity
from .models import User
from .. import services
from . import signals
def later():
    from keys.models import Key
field = models.ForeignKey("keys.Key", on_delete=models.CASCADE)
Key = apps.get_model("keys", "Key")
"""
    assert imported_modules(source, "vaults.services.directory") == {
        "keys.crypto",
        "vaults",
        "vaults.services.models",
        "vaults.services",
        "vaults.services.signals",
        "keys.models",
    }
