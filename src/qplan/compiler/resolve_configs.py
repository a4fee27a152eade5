"""Pass: pick the module config of every module (see docs/config-language.md#how-a-config-is-resolved-against-a-model step 1).

Levels, most specific first: ``module_name_configs`` (regex ``fullmatch`` on the dotted module
path) > ``module_type_configs`` (exact class: full name, import path, or a bare ``__qualname__``
that names one class of the model) > ``global_config``. A rule that matches a module applies to
its whole subtree, so a module's candidates at one level are the rules matching it or any
ancestor; within a level the last declared candidate wins, and a name match on an ancestor beats
a type match on the module itself. ``module_*_spec`` belongs to the matched module only
(``ModuleChoice.owner``). Each regex is compiled once (with RE2, :mod:`qplan.schema.patterns`:
linear time in the name) and matched once per module.

Also reports ``unmatched-selector``, ``shadowed-rule``, ``reset-to-default`` and
``ambiguous-module-type`` for module-level rules.
"""

from __future__ import annotations

from qplan.compiler.inventory import ModuleInfo
from qplan.compiler.state import ModuleChoice, Rule, State
from qplan.schema.patterns import compile_pattern
from qplan.schema.types import ModuleQuantizerConfig
from qplan.suggest import did_you_mean

__all__ = ["resolve_configs"]

_QC = "quantization_config"
_RESET_FIELDS = ("op_input_spec", "op_output_spec", "op_state_spec", "op_type_config", "op_name_config", "qat_schedule")
_DEFAULT = ModuleQuantizerConfig()


def resolve_configs(state: State) -> State:
    """Fill ``state.module_choice`` with the module config governing every module; returns the new state."""
    state = state.evolve(module_choice={})
    cfg = state.config
    modules = state.inventory.modules
    name_rules = [
        Rule("name", k, i, (_QC, "module_name_configs", k), v)
        for i, (k, v) in enumerate(cfg.module_name_configs.items())
    ]
    type_rules = [
        Rule("type", k, i, (_QC, "module_type_configs", k), v)
        for i, (k, v) in enumerate(cfg.module_type_configs.items())
    ]
    global_rule = Rule("global", None, 0, (_QC, "global_config"), cfg.global_config)

    compiled = [compile_pattern(r.key or "") for r in name_rules]
    type_of_class = _match_types(state, type_rules)

    matched: set[tuple[str, int]] = set()
    won: set[tuple[str, int]] = set()
    # per module: (name candidates, type candidates, the choice its children inherit); a candidate
    # dict maps rule index -> "matched this module itself"
    info: dict[str, tuple[dict[int, bool], dict[int, bool], ModuleChoice | None]] = {}
    for m in modules:
        pn, pt, inherited = info.get(_parent(m.path), ({}, {}, None)) if m.path else ({}, {}, None)
        own_names = [r.index for r, rx in zip(name_rules, compiled) if rx.fullmatch(m.path)]
        own_types = type_of_class.get(m.cls, ())
        if inherited is not None and not own_names and not own_types:
            state.module_choice[m.path] = inherited  # nothing new matches: the parent's choice, not owned
            info[m.path] = (pn, pt, inherited)
            continue
        names = dict.fromkeys(pn, False)
        types = dict.fromkeys(pt, False)
        for i in own_names:
            names[i] = True
            matched.add(("name", i))
        for i in own_types:
            types[i] = True
            matched.add(("type", i))
        ordered = [(name_rules[i], names[i]) for i in sorted(names, reverse=True)]
        ordered += [(type_rules[i], types[i]) for i in sorted(types, reverse=True)]
        ordered.append((global_rule, False))
        winner, owner = ordered[0]
        won.add((winner.level, winner.index))
        beaten = tuple(r for r, _ in ordered[1:])
        state.module_choice[m.path] = ModuleChoice(rule=winner, beaten=beaten, owner=owner)
        info[m.path] = (names, types, ModuleChoice(rule=winner, beaten=beaten, owner=False))

    _report_selectors(state, name_rules, type_rules, matched, won)
    _report_resets(state)
    return state


def _parent(path: str) -> str:
    return path.rpartition(".")[0]


def _match_types(state: State, type_rules: list[Rule]) -> dict[str, list[int]]:
    """Class name -> indices of the type rules naming it; ambiguous bare names are errors."""
    classes: dict[str, ModuleInfo] = {}
    for m in state.inventory.modules:
        classes.setdefault(m.cls, m)
    out: dict[str, list[int]] = {}
    for r in type_rules:
        hits = [c for c, m in classes.items() if r.key == c or r.key in m.import_paths]
        if not hits:
            hits = [c for c, m in classes.items() if m.qualname == r.key]
            if len(hits) > 1:
                state.report(
                    "ambiguous-module-type",
                    f"module type `{r.key}` names {len(hits)} different classes: "
                    + ", ".join(f"`{c}`" for c in sorted(hits)),
                    r.parts,
                    help=f"use the fully-qualified name, e.g. `{sorted(hits)[0]}`",
                )
                continue
        for c in hits:
            out.setdefault(c, []).append(r.index)
    return out


def _report_selectors(state: State, name_rules, type_rules, matched, won) -> None:
    paths = [m.path for m in state.inventory.modules]
    qualnames = sorted({m.qualname for m in state.inventory.modules})
    ambiguous = {d.path for d in state.diagnostics if d.code == "ambiguous-module-type"}
    for r in (*name_rules, *type_rules):
        what = "module name regex" if r.level == "name" else "module type"
        path = state.path(r.parts)
        if (r.level, r.index) not in matched:
            if path in ambiguous:
                continue
            choices = paths if r.level == "name" else qualnames
            state.report(
                "unmatched-selector",
                f"{what} `{r.key}` matched no module",
                r.parts,
                help=did_you_mean(r.key.replace("\\", ""), choices),
            )
        elif (r.level, r.index) not in won:
            state.report(
                "shadowed-rule",
                f"{what} `{r.key}` matches modules but never wins: a later or more specific rule beats it everywhere",
                r.parts,
                help="remove it, or declare it after the rules that beat it",
            )


def _omitted(state: State, rule: Rule, field: str) -> bool:
    """True when `field` of the rule's config is the library default and not written in the file."""
    if getattr(rule.config, field) != getattr(_DEFAULT, field):
        return False
    return state.spans.get(state.path((*rule.parts, field))) is None


def _report_resets(state: State) -> None:
    seen: set[tuple[tuple, tuple, str]] = set()
    for choice in state.module_choice.values():
        win = choice.rule
        if win is None or win.config is None or win.level == "global":
            continue
        lower = next((r for r in choice.beaten if r.level != win.level), None)
        if lower is None or lower.config is None:
            continue
        for f in _RESET_FIELDS:
            key = (win.parts, lower.parts, f)
            if key in seen:
                continue
            seen.add(key)
            if getattr(lower.config, f) != getattr(_DEFAULT, f) and _omitted(state, win, f):
                # `f` is not written, so the span of (*win.parts, f) is the rule's own
                state.report(
                    "reset-to-default",
                    f"`{state.path(win.parts)}` omits `{f}`, so the modules it governs take the library "
                    f"default instead of the value set by `{state.path(lower.parts)}`",
                    (*win.parts, f),
                    help=f"repeat `{f}` in this config if the value of `{state.path(lower.parts)}` should apply",
                )
