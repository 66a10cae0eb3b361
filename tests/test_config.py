"""factory.toml is checked whole when it is read: a bad timeout, a
placeholder the engine could not fill and a misspelt key are each one line
naming the file and the key, before any agent runs. Plain tests of the
reader, then the real ``factory agents`` and ``factory run --once``."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from factory_tui.backends.agents import BUILTIN_PROFILES, load_profiles, profile_for
from factory_tui.backends.base import FactoryBase
from factory_tui.config import Peer, config_from_dict, load_config
from factory_tui.errors import ConfigError
from factory_tui.model import State
from tests.engine_helpers import add, agent_profile, configure, factory, task

SOURCE = "/somewhere/.factory/factory.toml"
PROFILE = '[agents.x]\nargv = ["agent", "{prompt_file}"]\n'


def refused(text: str) -> str:
    """The one line factory.toml ``text`` is refused with."""
    with pytest.raises(ConfigError) as caught:
        config_from_dict(tomllib.loads(text), source=SOURCE)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{SOURCE}: "), message
    return message


# --- timeouts ---------------------------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "+nan", "-nan", "inf", "+inf", "-inf", "-5", "0", "0.0", "true", '"60"'])
def test_a_timeout_that_is_no_time_is_refused(value: str) -> None:
    message = refused(PROFILE + f"timeout = {value}\n")
    assert "[agents.x] timeout must be a positive number of seconds" in message


@pytest.mark.parametrize("value", ["1", "0.5", "3600", "86400.0"])
def test_a_positive_timeout_is_taken(value: str) -> None:
    config = config_from_dict(tomllib.loads(PROFILE + f"timeout = {value}\n"), source=SOURCE)
    assert load_profiles(config)["x"].timeout == float(value)


# --- placeholders -----------------------------------------------------------------


@pytest.mark.parametrize(
    "arg", ["{prompt:d}", "{prompt:>999999999}", "{prompt!r}", "{prompt.attr}", "{prompt[0]}",
            "--file={prompt_file!s}", "{task_id:{worktree}}", "x{worktree:10}y"],
)
def test_a_placeholder_with_a_spec_conversion_attribute_or_index_is_refused(arg: str) -> None:
    message = refused(f'[agents.x]\nargv = ["agent", "{arg}"]\n')
    assert "[agents.x] argv placeholder" in message
    assert "takes no format spec, conversion, attribute or index" in message
    # It says what to write instead.
    bare = arg[arg.index("{") + 1:].split(":")[0].split("!")[0].split(".")[0].split("[")[0]
    assert message.endswith(f"write {{{bare}}}")


@pytest.mark.parametrize("arg", ["{nope}", "{0}", "{}", "{prompts.x}"])
def test_an_unknown_placeholder_is_refused_with_the_known_ones(arg: str) -> None:
    message = refused(f'[agents.x]\nargv = ["agent", "{arg}"]\n')
    assert "[agents.x] argv uses an unknown placeholder" in message
    assert "{prompt}, {prompt_file}, {task_id}, {worktree}, {python}" in message


def test_plain_placeholders_and_doubled_braces_are_taken(tmp_path: Path) -> None:
    config = config_from_dict(tomllib.loads(
        '[agents.x]\nargv = ["agent", "{{literal}}", "--in={worktree}", "{prompt}", "{task_id}", "{prompt_file}"]\n'
    ), source=SOURCE)
    profile = load_profiles(config)["x"]
    argv = profile.render_argv(prompt="say {hi}", prompt_file=tmp_path / "p.md", task_id="T-1", worktree=tmp_path)
    assert argv == ["agent", "{literal}", f"--in={tmp_path}", "say {hi}", "T-1", str(tmp_path / "p.md")]


# --- unknown keys -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("max_paralel = 3\n", "unknown key max_paralel; did you mean max_parallel?"),
        ("base_brnach = 'main'\n", "unknown key base_brnach; did you mean base_branch?"),
        ("default_agnet = 'demo'\n", "unknown key default_agnet; did you mean default_agent?"),
        ("[peer]\nx = '../x'\n", "unknown key peer; did you mean peers?"),
        ("[worktree]\ncopyy = []\n", "[worktree] unknown key copyy; did you mean copy?"),
        ("[worktree]\nsetup_command = ['make']\n", "[worktree] unknown key setup_command (known: copy, setup)"),
        (PROFILE + "timout = 5\n", "[agents.x] unknown key timout; did you mean timeout?"),
        (PROFILE + "enviroment = {}\n", "[agents.x] unknown key enviroment (known: argv, output, timeout, env)"),
        (PROFILE + "evn = {}\n", "[agents.x] unknown key evn; did you mean env?"),
        (PROFILE + "outptu = 'text'\n", "[agents.x] unknown key outptu; did you mean output?"),
        ("[agents]\nmaay = ['hold']\n", "[agents] unknown key maay; did you mean may?"),
    ],
)
def test_an_unknown_key_is_refused_with_a_suggestion(text: str, expected: str) -> None:
    assert refused(text) == f"{SOURCE}: {expected}"


def test_an_unknown_key_with_nothing_close_lists_the_known_ones() -> None:
    message = refused("colour = 'blue'\n")
    assert message == (
        f"{SOURCE}: unknown key colour "
        "(known: name, base_branch, max_parallel, merge, default_agent, worktree, peers, agents, console, qa, mail, artifacts, planner, log)"
    )


def test_agents_may_is_a_list_not_a_profile() -> None:
    config = config_from_dict(tomllib.loads('[agents]\nmay = ["hold"]\n\n' + PROFILE), source=SOURCE)
    assert set(config.agents) == {"x"}
    assert set(load_profiles(config)) == {"x"}
    # With only `may`, the built-in profiles are used as with no [agents].
    config = config_from_dict(tomllib.loads('[agents]\nmay = []\n'), source=SOURCE)
    assert set(load_profiles(config)) == set(BUILTIN_PROFILES)
    assert "[agents] may must be a list" in refused('[agents]\nmay = "hold"\n')
    assert "[agents] may must be a list" in refused('[agents.may]\nargv = ["x"]\n')


def test_peers_by_path_by_remote_and_the_first_form() -> None:
    config = config_from_dict(tomllib.loads(
        '[peers]\nbackend = "../b"\n[peers.billing]\nremote = "/srv/meet.git"\naccept = "propose"\n'
        '[peers.web]\npath = "../web"\n'), source=SOURCE)
    assert config.peers == {
        "backend": Peer("backend", path="../b"),
        "billing": Peer("billing", remote="/srv/meet.git", accept="propose"),
        "web": Peer("web", path="../web"),
    }


@pytest.mark.parametrize(("text", "said"), [
    ('[peers]\n"odd name" = "/x"\n', "'odd name' cannot be a factory's name"),
    ('[peers]\nb = 5\n', "[peers] b must be a path or a table"),
    ('[peers.b]\naccept = "queue"\n', "[peers.b] needs one of path (same machine) or remote (a git URL), not neither"),
    ('[peers.b]\npath = "../b"\nremote = "x.git"\n', "not both"),
    ('[peers.b]\npath = "../b"\naccept = "always"\n', "accept must be one of manual, propose, queue"),
    ('[peers.b]\npath = "../b"\nurl = "x"\n', "[peers.b] "),
    ('[mail]\nsync_interval = 0\n', "[mail] sync_interval must be a number of seconds of at least 1"),
    ('[mail]\nmax_bytes = "big"\n', "[mail] max_bytes must be a whole number"),
    ('[mail.sources.am]\nfolder = "x"\n', "[mail.sources.am] "),
    ('[mail.sources.am]\npath = ""\n', "[mail.sources.am] path must be a non-empty string"),
])
def test_bad_peers_and_mail_are_refused(text: str, said: str) -> None:
    assert said in refused(text)


def test_mail_settings_and_sources() -> None:
    config = config_from_dict(tomllib.loads(
        '[mail]\nsync_interval = 5\nmax_bytes = 4096\n[mail.sources.agent-mail]\npath = "../am/projects/backend"\n'),
        source=SOURCE)
    assert (config.mail.sync_interval, config.mail.max_bytes) == (5.0, 4096)
    assert config.mail.sources == {"agent-mail": "../am/projects/backend"}


def test_a_default_agent_that_is_no_profile_is_refused_at_load() -> None:
    message = refused('default_agent = "ghost"\n' + PROFILE)
    assert message == f"{SOURCE}: default_agent 'ghost' is not a profile (profiles: x)"


# --- what we write ourselves still loads --------------------------------------------


def test_the_init_template_loads_with_its_profiles(base: FactoryBase) -> None:
    config = load_config(base.config_path)
    profiles = load_profiles(config)
    assert set(profiles) == set(BUILTIN_PROFILES)
    assert profiles["claude"].timeout == 3600.0
    # The commented-out keys of the template are real keys when uncommented.
    text = base.config_path.read_text()
    text = text.replace('# default_agent = "claude"', 'default_agent = "claude"')
    text = text.replace('# setup = ["npm", "ci"]', 'setup = ["npm", "ci"]')
    text = text.replace('# backend = "../backend-repo"', 'backend = "../backend-repo"')
    config = config_from_dict(tomllib.loads(text), source=str(base.config_path))
    assert (config.default_agent, config.worktree_setup) == ("claude", ["npm", "ci"])
    assert config.peers == {"backend": Peer("backend", path="../backend-repo")}
    text = text.replace('# [peers.billing]\n# remote', '[peers.billing]\nremote').replace('# accept = "propose"', 'accept = "propose"')
    text = text.replace('# [mail.sources.agent-mail]\n# path', '[mail.sources.agent-mail]\npath')
    text = text.replace('# sync_interval = 60', 'sync_interval = 60').replace('# max_bytes = 262144', 'max_bytes = 262144')
    config = config_from_dict(tomllib.loads(text), source=str(base.config_path))
    assert config.peers["billing"] == Peer("billing", remote="git@example.com:acme/billing.git", accept="propose")
    assert config.mail.sources == {"agent-mail": "../agent-mail-archive/projects/backend"}


def test_the_demo_base_config_loads(demo_base: FactoryBase) -> None:
    config = demo_base.config()
    assert profile_for(None, config).name in BUILTIN_PROFILES


# --- through the real commands ------------------------------------------------------


def test_factory_agents_refuses_a_misspelt_key_in_one_line(base: FactoryBase) -> None:
    text = base.config_path.read_text().replace("max_parallel = 2", "max_paralel = 2")
    base.config_path.write_text(text)

    done = factory(base, "agents")

    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == (
        f"factory: {base.config_path}: unknown key max_paralel; did you mean max_parallel?\n"
    )


def test_factory_agents_lists_profiles_beside_agents_may(base: FactoryBase, tmp_path: Path) -> None:
    configure(base, default_agent="quick", agents={"quick": agent_profile(tmp_path / "agent.py")},
              extra='\n[agents]\nmay = ["hold"]\n')
    # `[agents]` after `[agents.*]` tables is valid TOML; the file loads.
    assert "may" not in load_config(base.config_path).agents

    done = factory(base, "agents", "--json")

    assert done.returncode == 0, done.stderr
    assert '"name": "may"' not in done.stdout
    assert '"name": "quick"' in done.stdout and '"name": "demo"' in done.stdout


@pytest.mark.parametrize(
    "profile_change, expected",
    [
        ({"timeout": float("nan")}, "[agents.quick] timeout must be a positive number of seconds, not nan"),
        ({"timeout": float("inf")}, "[agents.quick] timeout must be a positive number of seconds, not inf"),
        ({"argv": ["{python}", "agent.py", "{prompt:d}"]}, "[agents.quick] argv placeholder {prompt:d} is not allowed"),
        ({"timout": 5}, "[agents.quick] unknown key timout; did you mean timeout?"),
    ],
)
def test_factory_run_refuses_a_bad_profile_before_any_agent_runs(
    base: FactoryBase, tmp_path: Path, profile_change: dict, expected: str
) -> None:
    profile = {**agent_profile(tmp_path / "agent.py"), **profile_change}
    configure(base, default_agent="quick", agents={"quick": profile})
    task_id = add(base, "Waits for a good profile")

    done = factory(base, "run", "--once")

    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith(f"factory: {base.config_path}: {expected}"), line
    # Nothing ran: the task waits in the queue, no run folder was made.
    assert task(base, task_id).state is State.QUEUED
    assert task(base, task_id).attempts == 0
    assert not any(base.runs_dir.iterdir())


# --- [console] ----------------------------------------------------------------------


def test_the_console_table_is_optional_and_switched_on_by_default() -> None:
    console = config_from_dict({}, source=SOURCE).console
    assert (console.notify, console.bell, console.title, console.keymap) == (True, True, True, {})


def test_the_console_table_is_read_whole() -> None:
    config = config_from_dict(tomllib.loads(
        '[console]\nnotify = false\nbell = false\ntitle = true\n'
        '[console.keymap]\napprove = "a,ctrl+a"\n"plan.stop" = "s"\n'
    ), source=SOURCE)
    assert (config.console.notify, config.console.bell, config.console.title) == (False, False, True)
    assert config.console.keymap == {"approve": "a,ctrl+a", "plan.stop": "s"}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[console]\nbel = true\n", "[console] unknown key bel; did you mean bell?"),
        ('[console]\nnotify = "yes"\n', "[console] notify must be true or false, not 'yes'"),
        ("[console]\ntitle = 1\n", "[console] title must be true or false, not 1"),
        ('console = "on"\n', "[console] must be a table"),
        ('[console]\nkeymap = ["a"]\n', "[console] keymap must be a table"),
        ('[console.keymap]\napprove = 1\n', '[console] keymap: approve must be a key such as "ctrl+a"'),
        ('[console.keymap]\napprove = ""\n', "[console] keymap: approve must be a key"),
        ('[console.keymap]\napprove = "a,,b"\n', "[console] keymap: approve must be a key"),
        ('[console.keymap]\nplan.approve = "a"\n', '[console] keymap: plan is a table; a binding id with a dot is quoted'),
    ],
)
def test_a_bad_console_table_is_one_line(text: str, words: str) -> None:
    assert words in refused(text)


def test_the_first_factory_toml_holds_the_console_table(base: FactoryBase) -> None:
    console = base.config().console
    assert (console.notify, console.bell, console.title) == (True, True, True)
    assert "[console]" in base.config_path.read_text()


def test_artifacts_settings_are_read_and_checked() -> None:
    config = config_from_dict({"artifacts": {"prompt_budget": 5000, "refresh_every": 0, "keep_runs": 3,
                                             "old_raw": "drop"}})
    assert (config.artifacts.prompt_budget, config.artifacts.refresh_every, config.artifacts.keep_runs,
            config.artifacts.old_raw, config.artifacts.stale_after) == (5000, 0, 3, "drop", 20)
    assert refused("[artifacts]\nprompt_budget = 10\n") == (
        f"{SOURCE}: [artifacts] prompt_budget must be a whole number of at least 1024, not 10")
    assert refused("[artifacts]\nold_raw = 'shred'\n") == (
        f"{SOURCE}: [artifacts] old_raw must be one of compress, drop, not 'shred'")
    assert refused("[artifacts]\nkeep = 3\n") == f"{SOURCE}: [artifacts] unknown key keep; did you mean keep_runs?"
