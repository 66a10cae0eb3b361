"""Two factories on one machine, for the mail tests: real repositories,
real bases, each naming the other as a peer by path."""

from __future__ import annotations

import subprocess
from pathlib import Path

from factory_tui.backends.base import FactoryBase
from factory_tui.backends.session import FactorySession

OPERATOR = "cli:tester"


def new_repo(where: Path) -> Path:
    where.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(where)], check=True)
    (where / "README.md").write_text("# a project\n")
    subprocess.run(["git", "-C", str(where), "add", "."], check=True)
    subprocess.run(["git", "-C", str(where), "commit", "-q", "-m", "start"], check=True)
    return where


def name_base(base: FactoryBase, name: str, peers: str = "", extra: str = "") -> None:
    """Give ``base`` its name and peers (TOML lines), keeping the rest of factory.toml."""
    text = base.config_path.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.startswith("name =")]
    base.config_path.write_text(f'name = "{name}"\n' + "\n".join(lines) + "\n" + peers + "\n" + extra,
                                encoding="utf-8")


def two_factories(tmp_path: Path, *, shop_accept: str = "manual", mill_accept: str = "manual"
                  ) -> tuple[FactoryBase, FactoryBase]:
    """``shop`` and ``mill``, side by side, each the other's path peer."""
    shop, _ = FactoryBase.init(new_repo(tmp_path / "shop"))
    mill, _ = FactoryBase.init(new_repo(tmp_path / "mill"))
    name_base(shop, "shop", f'[peers.mill]\npath = "../mill"\naccept = "{mill_accept}"\n')
    name_base(mill, "mill", f'[peers.shop]\npath = "../shop"\naccept = "{shop_accept}"\n')
    return shop, mill


def session(base: FactoryBase) -> FactorySession:
    return FactorySession(base)
