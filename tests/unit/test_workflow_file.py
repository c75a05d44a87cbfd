"""Workflow files: the example registers; each kind of mistake is refused with one line
naming the place."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_dispatch.services.workflow_file import WorkflowInvalid, parse

EXAMPLE = (Path(__file__).parents[2] / "docs/examples/write-review-translate.yaml").read_text()

BASE = """
name: wf
steps:
  - id: a
    category: writing
  - id: b
    needs: [a]
    category: review
    input: { text: "{{ steps.a.result }}" }
"""


def test_the_example_parses_in_dependency_order_with_its_defaults() -> None:
    wf, doc = parse(EXAMPLE)
    assert wf.name == "write-review-translate"
    assert wf.order() == ["draft", "review", "translate", "fix"]
    assert dict(wf.defaults) == {"maxAgents": 2, "timeoutMs": 60000}
    assert str(wf.step("translate").on_failure) == "continue"
    assert wf.step("fix").when is not None
    assert doc["steps"][1]["needs"] == ["draft"]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (
            BASE.replace("    category: review", "    category: review\n    colour: red"),
            "steps[1] (b).colour: unknown field",
        ),
        (BASE + "colour: red\n", "colour: unknown field"),
        (BASE.replace("id: b", "id: a"), "steps[1].id: duplicate step id 'a'"),
        (BASE.replace("needs: [a]", "needs: [x]"), "steps[1] (b).needs: 'x' is not a step"),
        (
            BASE.replace("    category: writing", "    category: writing\n    needs: [b]"),
            "steps: cycle",
        ),
        (
            BASE.replace("id: a\n", "id: a\n    input: { t: '{{ steps.b.result }}' }\n"),
            "steps[0] (a).input: 'steps.b.result': step 'b' is not upstream of this step",
        ),
        (
            BASE.replace("steps.a.result", "steps.zz.result"),
            "steps[1] (b).input: 'steps.zz.result' names no step 'zz'",
        ),
        (
            BASE.replace("steps.a.result", "__import__('os').system('x')"),
            "steps[1] (b).input: {{ __import__('os').system('x') }} is not a reference",
        ),
        (BASE.replace("steps.a.result", "env.HOME"), "must start with 'job.' or 'steps.'"),
        (
            BASE.replace("category: review", "category: review\n    onFailure: sometimes"),
            "steps[1] (b).onFailure: value error, must be fail, continue or retry:N",
        ),
        (
            BASE + "output: { x: '{{ steps.q.result }}' }\n",
            "output: 'steps.q.result' names no step",
        ),
        ("name: wf\nsteps: []\n", "steps: list should have at least 1 item"),
        ("name: [unclosed\n", "line 2: not valid YAML"),
        ("!!python/object/apply:os.system ['x']\n", "not valid YAML"),
    ],
)
def test_a_bad_file_is_refused_with_one_line_naming_the_place(text: str, says: str) -> None:
    with pytest.raises(WorkflowInvalid) as caught:
        parse(text)
    message = str(caught.value)
    assert says in message
    assert "\n" not in message


def test_a_step_may_reference_any_step_upstream_not_only_its_direct_needs() -> None:
    text = (
        BASE
        + """  - id: c
    needs: [b]
    category: writing
    input: { first: "{{ steps.a.result }}", second: "{{ steps.b.status }}" }
"""
    )
    wf, _ = parse(text)
    assert wf.order() == ["a", "b", "c"]
