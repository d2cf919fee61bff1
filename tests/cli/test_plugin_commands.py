"""Commands that installed packages add: a broken plug-in costs only its own commands, with one line."""

import importlib
import importlib.metadata

# The module, not the `main` function that tfp_aline.cli exports under the same name.
cli = importlib.import_module("tfp_aline.cli.main")


def test_a_broken_plugin_is_one_warning_and_the_other_commands_stay(monkeypatch, capsys):
    real = importlib.metadata.entry_points
    broken = importlib.metadata.EntryPoint("broken", "no_such_module_here:add_commands", cli.COMMANDS_GROUP)

    def entry_points(group=None, **kw):
        found = list(real(group=group, **kw))
        return found + [broken] if group == cli.COMMANDS_GROUP else found

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    parser = cli.build_parser()
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "warning: commands of 'broken' (no_such_module_here:add_commands) not added: "
        "ModuleNotFoundError: No module named 'no_such_module_here'"
    ]
    commands = next(a for a in parser._actions if getattr(a, "choices", None)).choices
    assert {"train", "evaluate", "export", "tasks", "advise"} <= set(commands)
