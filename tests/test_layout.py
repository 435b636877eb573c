"""The layout of code/: the study's commands and classes.py on top of one package whose sub-packages import one way
(data <- models <- training <- evaluation <- studies <- publishing), no import cycle, commands never importing
commands, and every sub-package saying its job."""
import ast
import importlib

import pytest

from realfake.project import REPO_ROOT

CODE = REPO_ROOT / "code"
LAYERS = (            # each may import itself and what comes before it, never what comes after
    ("base", ("realfake", "realfake.project", "realfake.rules", "realfake.metrics")),
    ("data", ("realfake.data",)),
    ("classes.py", ("classes",)),
    ("models", ("realfake.models",)),
    ("training", ("realfake.training",)),
    ("evaluation", ("realfake.evaluation",)),
    ("studies", ("realfake.studies",)),
    ("publishing", ("realfake.publishing",)),
    ("commands", ("realfake.cli",)),                  # and every command file in code/
)
SUB_PACKAGES = ("data", "models", "training", "evaluation", "studies", "publishing")


def module_name(path):
    return ".".join(path.relative_to(CODE).with_suffix("").parts).removesuffix(".__init__")


MODULES = {module_name(p): p for p in sorted(CODE.glob("realfake/**/*.py")) + sorted(CODE.glob("*.py"))}
COMMANDS = {name for name in MODULES if "." not in name and name not in ("classes", "realfake")}


def layer(module):
    if module in COMMANDS:
        return len(LAYERS) - 1
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") and p != "realfake" for p in prefixes):
            return rank
    raise AssertionError(f"{module} belongs to no layer of test_layout.LAYERS")


def project_imports(module):
    """The project's modules that `module` imports, at any depth of its code (imports inside functions count)."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in MODULES}
        elif isinstance(node, ast.ImportFrom) and node.module in MODULES:
            submodules = {f"{node.module}.{alias.name}" for alias in node.names} & MODULES.keys()
            found |= submodules or {node.module}
            if len(submodules) < len(node.names):
                found.add(node.module)
    return found - {module}


GRAPH = {module: project_imports(module) for module in MODULES}


def test_every_module_is_in_a_layer_and_imports_only_its_own_layer_and_those_below():
    upward = [f"{module} ({LAYERS[layer(module)][0]}) imports {target} ({LAYERS[layer(target)][0]})"
              for module, targets in GRAPH.items() for target in sorted(targets) if layer(target) > layer(module)]
    assert not upward, "\n".join(upward)


def test_no_import_cycle():
    state, cycles = {}, []

    def visit(module, path):
        state[module] = "open"
        for target in sorted(GRAPH[module]):
            if state.get(target) == "open":
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


def test_commands_import_the_package_never_another_command():
    assert {"train", "test", "predict", "reproduce", "get_data"} <= COMMANDS
    crossing = {command: GRAPH[command] & COMMANDS for command in COMMANDS if GRAPH[command] & COMMANDS}
    assert not crossing, crossing


def test_the_layer_check_fails_on_an_upward_import(monkeypatch):
    monkeypatch.setitem(GRAPH, "realfake.data.splits", GRAPH["realfake.data.splits"] | {"realfake.training.loop"})
    with pytest.raises(AssertionError, match="realfake.data.splits \\(data\\) imports realfake.training.loop"):
        test_every_module_is_in_a_layer_and_imports_only_its_own_layer_and_those_below()


@pytest.mark.parametrize("package", SUB_PACKAGES)
def test_each_sub_package_says_its_job_and_what_it_may_import(package):
    doc = importlib.import_module(f"realfake.{package}").__doc__
    assert doc and "Imports" in doc and len(doc.strip().splitlines()) <= 3, package


def test_classes_holds_the_study_loaders_and_network_itself():
    """classes.py defines what the study describes (it does not re-export it from the package)."""
    defined = {node.name for node in ast.parse(MODULES["classes"].read_text()).body
               if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
    assert {"load_cifake", "load_cifar100", "load_agiri", "CIFAKE_CNN", "SRMLayer"} <= defined


def test_every_rule_lives_in_rules_under_a_name_of_its_own():
    rules = importlib.import_module("realfake.rules")
    named = [name for name in dir(rules) if name.endswith("_RULE")]
    assert len(named) == len(set(named)) >= 5
    elsewhere = [f"{module}: {node.targets[0].id}" for module, path in MODULES.items() if module != "realfake.rules"
                 for node in ast.parse(path.read_text()).body if isinstance(node, ast.Assign)
                 and isinstance(node.targets[0], ast.Name) and node.targets[0].id.endswith("_RULE")]
    assert not elsewhere, elsewhere


def test_the_scoring_modules_only_score():
    """Datasets are loaded by the data layer and classes.py; metrics and scoring take what they are given."""
    for module in ("realfake.metrics", "realfake.evaluation.scoring"):
        names = {alias.name for node in ast.walk(ast.parse(MODULES[module].read_text()))
                 if isinstance(node, ast.ImportFrom) for alias in node.names}
        assert not {name for name in names if name.startswith("load_")}, module
