"""One contract for every integration: the same assertions on the unified output of each.

Each ERP integration is synced in full from its source (a real Tryton, or the
sandbox that ships with Interlink) and every record is read back through the
HTTP API. Whatever the source, a record must have exactly the model's fields,
statuses from the model's enums, money as decimal strings, times in UTC and
references in one form.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from interlink.connectors.registry import get_integration
from interlink.crypto import generate_token, hash_token
from interlink.demo.run import sandbox_modules
from interlink.model import ENTITIES, build_record_id
from interlink.model.ids import RECORD_ID_PREFIXES
from interlink.runtime import Runtime
from interlink.store.api_keys import insert_api_key
from tests.sandboxes.conftest import sync
from tests.support.sandbox_server import serve
from tests.support.tryton_fixtures import acquire

UTC_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
CALENDAR_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DECIMAL = re.compile(r"^-?\d+(\.\d+)?$")
REF_PREFIXES = {f"{prefix}_" for prefix in RECORD_ID_PREFIXES.values()}
SANDBOXES = [name for name, _ in sandbox_modules()]
INTEGRATIONS = ["tryton", *SANDBOXES]


@pytest.fixture
def credentials(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    name = request.param
    if name == "tryton":
        database = acquire(request.getfixturevalue("tryton_server"))
        yield database.password_credentials()
        return
    module = dict(sandbox_modules())[name]
    with serve(module.create_app(size=12)) as server:
        yield module.demo_credentials(server.base_url)


@pytest.fixture
async def api(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    key = generate_token("ilk")
    async with runtime.db.write() as db:
        await insert_api_key(
            db, name="contract", key_hash=hash_token(key), key_prefix=key[:8], expires_at=None
        )
    transport = httpx.ASGITransport(app=runtime.app(manage_lifecycle=False))
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://interlink.test", headers=headers
    ) as client:
        yield client


def decimal_fields(schema: dict[str, Any]) -> set[str]:
    """Names of the top-level fields whose JSON Schema is a decimal string."""
    names = set()
    for name, field in schema["properties"].items():
        options = field.get("anyOf", [field])
        if any(option.get("pattern") == DECIMAL.pattern for option in options):
            names.add(name)
    return names


def check_value(path: str, key: str, value: Any, problems: list[str]) -> None:
    """Check one JSON value by the naming rules of the unified model, recursing into objects and lists."""
    if isinstance(value, dict):
        if set(value) == {"id", "remote_id"}:
            if value["id"][: value["id"].index("_") + 1] not in REF_PREFIXES:
                problems.append(f"{path}: reference id {value['id']!r} has no entity prefix")
            return
        for inner_key, inner in value.items():
            check_value(f"{path}.{inner_key}", inner_key, inner, problems)
        return
    if isinstance(value, list):
        for index, inner in enumerate(value):
            check_value(f"{path}[{index}]", key, inner, problems)
        return
    if value is None:
        return
    if key.endswith("_at") and not (isinstance(value, str) and UTC_TIME.match(value)):
        problems.append(f"{path}: {value!r} is not an RFC 3339 UTC time")
    if key.endswith("_date") and not (isinstance(value, str) and CALENDAR_DATE.match(value)):
        problems.append(f"{path}: {value!r} is not a calendar date")
    if isinstance(value, float):
        problems.append(f"{path}: {value!r} is a float; numbers with fractions must be decimal strings")


@pytest.mark.parametrize("credentials", INTEGRATIONS, indirect=True)
async def test_unified_output_contract(
    request: pytest.FixtureRequest, runtime: Runtime, api: httpx.AsyncClient, credentials: dict[str, str]
) -> None:
    name = request.node.callspec.params["credentials"]
    integration = get_integration(name)
    assert integration is not None
    created = await api.post(
        "/v1/connections",
        json={"integration": name, "end_user": {"id": "contract"}, "credentials": credentials},
    )
    assert created.status_code == 201, created.text
    connection_id = created.json()["id"]

    checked = 0
    for entity_name in integration.entity_names():
        run = await sync(runtime, connection_id, entity_name, mode="full")
        assert run.status == "succeeded", (name, entity_name, run.error)
        entity = ENTITIES[entity_name]
        fields = set(entity.record_model.model_fields)
        money = decimal_fields(entity.record_model.model_json_schema())

        body = (
            await api.get(f"/v1/{entity.path}", params={"page_size": 1000, "include_remote_data": "true"})
        ).json()
        assert body["data"], f"{name} returned no {entity_name} records"
        for record in body["data"]:
            where = f"{name} {entity_name} {record['remote_id']}"
            assert set(record) == fields, f"{where}: fields differ: {set(record) ^ fields}"
            entity.record_model.model_validate(record)  # types, enums, and no unknown fields
            assert record["id"] == build_record_id(connection_id, entity_name, record["remote_id"]), where
            assert record["integration"] == name, where
            for field in money:
                value = record[field]
                assert value is None or DECIMAL.match(value), (
                    f"{where}: {field}={value!r} is not a decimal string"
                )
            problems: list[str] = []
            for key, value in record.items():
                if key != "remote_data":
                    check_value(key, key, value, problems)
            assert not problems, f"{where}: {problems}"
            checked += 1
    assert checked > 0
