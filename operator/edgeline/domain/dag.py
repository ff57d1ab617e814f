"""The dependency graph of a DataPipeline's steps (dependsOn): cycles, an order to run
them in, and what a step depends on through others."""

from __future__ import annotations

from edgeline.api.datapipeline import Step


def find_cycle(steps: list[Step]) -> list[str] | None:
    """One dependency cycle as a path (a -> b -> c -> a), or None for a DAG."""
    deps = {s.name: list(s.depends_on) for s in steps}
    colour: dict[str, int] = {}
    stack: list[str] = []

    def visit(name: str) -> list[str] | None:
        colour[name] = 1
        stack.append(name)
        for dep in deps.get(name, []):
            if colour.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep in deps and colour.get(dep) is None:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        colour[name] = 2
        return None

    for step in steps:
        if colour.get(step.name) is None:
            found = visit(step.name)
            if found:
                return found
    return None


def topological_order(steps: list[Step]) -> list[str]:
    """Step names so that every step comes after its dependencies; ties keep spec order.
    The steps must form a DAG (find_cycle first)."""
    names = {s.name for s in steps}
    done: list[str] = []
    left = list(steps)
    while left:
        ready = [s for s in left if all(d in done for d in s.depends_on if d in names)]
        if not ready:
            raise ValueError("the steps contain a cycle")
        done.append(ready[0].name)
        left.remove(ready[0])
    return done


def ancestors(steps: list[Step], name: str) -> set[str]:
    """Every step `name` depends on, directly or through others."""
    by_name = {s.name: s for s in steps}
    seen: set[str] = set()
    todo = list(by_name[name].depends_on) if name in by_name else []
    while todo:
        current = todo.pop()
        if current in seen or current not in by_name:
            continue
        seen.add(current)
        todo.extend(by_name[current].depends_on)
    return seen
