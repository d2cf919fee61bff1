"""README.md and docs/: the generated CLI reference is current, README is short and its links exist."""

import importlib.util
import re
import subprocess
import sys

import pytest
from conftest import ROOT

README = ROOT / "README.md"
CLI_PAGE = ROOT / "docs" / "cli.md"


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cli_reference = load_script("cli_reference")


def test_cli_reference_is_up_to_date():
    text = CLI_PAGE.read_text(encoding="utf-8")
    expected = cli_reference.updated(text)
    if expected != text and sys.version_info[:2] != (3, 11):
        pytest.skip("argparse formats help differently on this Python; the page is rendered with 3.11")
    assert expected == text, "docs/cli.md is out of date: run `python scripts/cli_reference.py`"


def test_check_mode_flags_a_stale_readme_and_the_script_fixes_it(tmp_path):
    stale = tmp_path / "cli.md"
    stale.write_text(f"# title\n\n{cli_reference.START}\nold help\n{cli_reference.END}\n\ntail\n", encoding="utf-8")
    stale.chmod(0o644)
    script = [sys.executable, str(ROOT / "scripts" / "cli_reference.py"), "--page", str(stale)]
    assert subprocess.run(script + ["--check"], capture_output=True).returncode == 1
    assert subprocess.run(script, capture_output=True).returncode == 0
    assert subprocess.run(script + ["--check"], capture_output=True).returncode == 0
    text = stale.read_text(encoding="utf-8")
    assert text.startswith("# title\n") and text.endswith("\n\ntail\n") and "$ tfp-aline train --help" in text
    assert stale.stat().st_mode & 0o777 == 0o644
    stale.write_text("no markers\n")
    assert subprocess.run(script + ["--check"], capture_output=True).returncode == 2


def test_every_subcommand_is_in_the_reference():
    text = CLI_PAGE.read_text(encoding="utf-8")
    block = text[text.index(cli_reference.START) : text.index(cli_reference.END)]
    from tfp_aline.cli.main import build_parser

    for action in build_parser()._actions:
        for name in getattr(action, "choices", None) or ():
            assert f"$ tfp-aline {name} --help" in block


def test_local_links_and_pictures_exist():
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)\)", text)
    assert "notebooks/figures/query_strategy.png" in targets
    missing = [t for t in targets if "://" not in t and not (ROOT / t).exists()]
    assert not missing, f"README links to missing files: {missing}"


def test_readme_is_short_and_points_into_the_docs():
    text = README.read_text(encoding="utf-8")
    assert len(text.encode("utf-8")) < 12_000, "README.md is for a newcomer; long sections belong in docs/"
    targets = re.findall(r"\]\(([^)#\s]+)\)", text)
    assert "docs/getting-started.md" in targets and "docs/design.md" in targets
