"""The README's examples, extracted from README.md and run in order against a fresh demo server.

`liftoff serve --demo` runs in an empty folder (so `.liftoff/` is that folder's, as for a new
user); shell blocks run there too (`.venv/bin/liftoff` points at this environment's), and
GraphQL blocks are sent as they are written, with the headers and variables the demo printed.
The only change made to an example is the port: the README says 8000, the server gets a free one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import DocumentNode, OperationDefinitionNode, OperationType, parse, print_ast

from tests.support.gqlws import GqlWsClient
from tests.support.processes import ROOT, LiftoffServer, liftoff_command, liftoff_env

pytestmark = [pytest.mark.e2e, pytest.mark.embedded]

README = ROOT / "README.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)
PRINTED = re.compile(r"^(Headers|Variables):\s+(\{.*\})\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Example:
    language: str
    text: str


def readme_examples() -> list[Example]:
    """The runnable blocks (graphql, sh) of README.md in order, less the opening two commands."""
    blocks = [Example(lang, body) for lang, body in BLOCK.findall(README.read_text())]
    runnable = [b for b in blocks if b.language in ("graphql", "sh")]
    return [b for b in runnable if "scripts/serve" not in b.text]


@dataclass
class Demo:
    server: LiftoffServer
    folder: Path
    headers: dict[str, str]
    variables: dict[str, str]
    env: dict[str, str]

    def local(self, text: str) -> str:
        return text.replace("127.0.0.1:8000", f"127.0.0.1:{self.server.port}")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    folder = tmp_path_factory.mktemp("readme")
    (folder / ".venv" / "bin").mkdir(parents=True)
    (folder / ".venv" / "bin" / "liftoff").symlink_to(liftoff_command()[0])
    env = liftoff_env()
    server = LiftoffServer(
        env=env,
        log_path=folder / "serve.log",
        args=["--demo", "--demo-customers", "40"],
        cwd=folder,
        startup_timeout=300,
    )
    try:
        with server:
            printed = dict(PRINTED.findall(server.output()))
            assert {"Headers", "Variables"} <= set(printed), server.output()[-3000:]
            variables = json.loads(printed["Variables"])
            assert variables["customerId"] and variables["taskKey"], variables
            yield Demo(server, folder, json.loads(printed["Headers"]), variables, env)
    finally:
        from tests.support.processes import stop_embedded_postgres

        stop_embedded_postgres(folder / ".liftoff" / "pgdata")


def operations(text: str) -> list[OperationDefinitionNode]:
    return [d for d in parse(text).definitions if isinstance(d, OperationDefinitionNode)]


def only(op: OperationDefinitionNode) -> str:
    return print_ast(DocumentNode(definitions=(op,)))


def variables_for(op: OperationDefinitionNode, printed: dict[str, str]) -> dict[str, str]:
    declared = {v.variable.name.value for v in op.variable_definitions or ()}
    return {k: v for k, v in printed.items() if k in declared}


def post(demo: Demo, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(
        demo.server.graphql_url,
        json={"query": query, "variables": variables},
        headers=demo.headers,
        timeout=60,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert not body.get("errors") and body.get("data"), (query, variables, body)
    return body


def run_shell(demo: Demo, text: str) -> None:
    done = subprocess.run(
        ["sh", "-ec", demo.local(text)],
        cwd=demo.folder,
        env={**demo.env, "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, (text, done.stdout, done.stderr)
    if done.stdout.lstrip().startswith("{"):
        body = json.loads(done.stdout)
        assert not body.get("errors") and body.get("data"), (text, body)
    else:
        assert done.stdout.strip(), (text, done.stderr)


async def test_readme_examples_run_in_order_on_the_demo(demo: Demo) -> None:
    examples = readme_examples()
    assert [e.language for e in examples].count("graphql") >= 4, examples
    if shutil.which("curl") is None and any("curl " in e.text for e in examples):
        pytest.fail("the README's curl example needs `curl` on PATH")
    subscriptions: list[OperationDefinitionNode] = []
    for example in examples:
        if example.language == "sh":
            run_shell(demo, example.text)
            continue
        for op in operations(example.text):
            if op.operation is OperationType.SUBSCRIPTION:
                subscriptions.append(op)
            else:
                post(demo, only(op), variables_for(op, demo.variables))
    await live_examples(demo, subscriptions)


async def live_examples(demo: Demo, subscriptions: list[OperationDefinitionNode]) -> None:
    """Every subscription is accepted; replay arrives at once, live events after a change."""
    assert subscriptions, "the README shows no subscription"
    token = demo.headers["Authorization"].removeprefix("Bearer ")
    ws_url = demo.server.graphql_url.replace("http://", "ws://")
    names = [op.name.value if op.name else f"op{i}" for i, op in enumerate(subscriptions)]
    async with await GqlWsClient.connect(ws_url, token=token) as client:
        for name, op in zip(names, subscriptions, strict=True):
            await client.subscribe(name, only(op), variables_for(op, demo.variables))
        replaying = [
            n for n, op in zip(names, subscriptions, strict=True) if "afterSequence" in only(op)
        ]
        for name in replaying:
            first = await client.next_data(name, within=20)
            assert next(iter(first.values()))["replayed"] is True, first
        # A change now: complete the sample customer's next task (as `Complete` does).
        todo = post(
            demo,
            "query($c: ID) { tasks(customerId: $c, status: [AVAILABLE]) { key } }",
            {"c": demo.variables["customerId"]},
        )["data"]["tasks"]
        assert todo, "the sample customer has nothing left to do after the README's examples"
        post(
            demo,
            "mutation($c: ID, $k: String!) { updateTask(input: {customerId: $c, taskKey: $k, "
            "action: COMPLETE}) { task { key } } }",
            {"c": demo.variables["customerId"], "k": todo[0]["key"]},
        )
        if "Activity" in names:
            event = (await client.next_data("Activity", within=20))["activity"]
            assert event["customerId"] == demo.variables["customerId"], event
        for name in replaying:
            while True:  # the rest of the history, then the live event of that change
                data = next(iter((await client.next_data(name, within=20)).values()))
                if data["replayed"] is False:
                    break
        for name in names:  # nothing was refused (celebrations may have had nothing to say)
            while client.pending(name):
                message = await client.receive(name, within=1)
                assert message["type"] == "next" and not message["payload"].get("errors"), message
