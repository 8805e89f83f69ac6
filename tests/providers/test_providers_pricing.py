"""Prices from the shipped catalogue (litellm's list), overrides, unknown costs and the offline
zero cost."""

from __future__ import annotations

import json

import pytest

from council_app.providers import catalog
from council_app.providers.base import Completion
from council_app.providers.pricing import PriceTable, cost_usd

MILLION = 1_000_000

TABLE = {
    "gpt-5.1": (1.25, 10.0),
    "gpt-5": (1.25, 10.0),
    "gpt-5-mini": (0.25, 2.0),
    "gpt-5-nano": (0.05, 0.40),
    "gpt-4.1": (2.0, 8.0),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4o": (2.50, 10.0),
    "gpt-4o-mini": (0.15, 0.60),
}


def _rates(table: PriceTable, model: str) -> tuple[float, float]:
    return (table.cost_usd(model, MILLION, 0), table.cost_usd(model, 0, MILLION))


@pytest.mark.parametrize(("model", "expected"), TABLE.items())
def test_catalogue_prices(model, expected):
    assert _rates(PriceTable.load(None), model) == pytest.approx(expected)


def test_cost_combines_input_and_output():
    # 2,000 in at $2.50/M + 500 out at $10/M
    assert PriceTable().cost_usd("gpt-4o", 2_000, 500) == pytest.approx(0.005 + 0.005)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-4o-mini-2024-07-18", (0.15, 0.60)),
        ("gpt-4o-2024-08-06", (2.50, 10.0)),
        ("gpt-5-mini-2025-08-07", (0.25, 2.0)),
        ("gpt-4.1-nano", (0.10, 0.40)),  # its own listed price, not gpt-4.1's
        ("GPT-4o-Mini", (0.15, 0.60)),
    ],
)
def test_longest_prefix_match(model, expected):
    assert _rates(PriceTable(), model) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("model", "expected"),
    [("openai/gpt-4o", (2.50, 10.0)), ("openai/gpt-4o-mini", (0.15, 0.60))],
)
def test_vendor_prefix_is_stripped(model, expected):
    assert _rates(PriceTable(), model) == pytest.approx(expected)


@pytest.mark.parametrize("model", ["llama3:8b", "gpt-50", "mistral/mixtral-unknown", ""])
def test_unknown_models_have_no_price_never_a_guess(model):
    table = PriceTable()
    assert table.rate(model) is None
    assert table.cost_usd(model, MILLION, MILLION) is None


def test_offline_calls_cost_nothing():
    assert PriceTable().cost_usd("gpt-4o", MILLION, MILLION, provider="offline") == 0.0
    assert cost_usd("gpt-4o", MILLION, MILLION, "offline") == 0.0
    assert cost_usd("gpt-4o", MILLION, 0) == pytest.approx(2.50)


def _completion(**overrides: object) -> Completion:
    fields: dict[str, object] = {
        "text": "x",
        "model": "gpt-4o",
        "provider": "openai",
        "input_tokens": MILLION,
        "output_tokens": 0,
        "duration_ms": 1.0,
    }
    fields.update(overrides)
    return Completion(**fields)  # type: ignore[arg-type]


def test_gateway_cost_is_preferred_over_the_price_list():
    assert PriceTable().cost_of(_completion(gateway_cost_usd=0.0123)) == 0.0123
    assert PriceTable().cost_of(_completion(model="my-local", gateway_cost_usd=0.5)) == 0.5


def test_missing_usage_is_an_unknown_cost_not_zero():
    assert PriceTable().cost_of(_completion(usage_known=False, input_tokens=0)) is None
    assert PriceTable().cost_of(_completion()) == pytest.approx(2.50)
    assert PriceTable().cost_of(_completion(model="llama3.2")) is None


def test_catalogue_knows_which_models_take_reasoning_effort():
    assert catalog.catalog_size() > 1000
    assert catalog.supports_reasoning("gpt-5.1") is True
    assert catalog.supports_reasoning("o3-mini") is True
    assert catalog.supports_reasoning("gpt-4o-mini") is False
    assert catalog.supports_reasoning("openai/gpt-4o-mini") is False
    assert catalog.supports_reasoning("my-own-finetune") is None


def test_override_file_overrides_and_extends(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps({"gpt-4o": {"input": 1, "output": 2}, "llama3": {"input": 0, "output": 0}})
    )

    table = PriceTable.load(str(path))

    assert _rates(table, "gpt-4o") == pytest.approx((1.0, 2.0))
    assert _rates(table, "gpt-4o-2024-08-06") == pytest.approx((1.0, 2.0))
    assert _rates(table, "llama3:8b") == (0.0, 0.0)
    assert _rates(table, "gpt-5") == pytest.approx((1.25, 10.0))  # the catalogue stays


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"m": 3}', "must be an object"),
        ('{"m": {"input": -1, "output": 1}}', "input must be a non-negative number"),
        ('{"m": {"input": "cheap", "output": 1}}', "input must be a non-negative number"),
        ('{"m": {"input": 1}}', "output must be a non-negative number"),
        ('{"m": {"input": NaN, "output": 1}}', "input must be a non-negative number"),
    ],
)
def test_bad_price_file_names_the_file(tmp_path, content, reason):
    path = tmp_path / "bad-prices.json"
    path.write_text(content)

    with pytest.raises(ValueError, match=reason) as caught:
        PriceTable.load(str(path))

    message = str(caught.value)
    assert str(path) in message
    assert "\n" not in message


def test_missing_price_file_is_a_value_error(tmp_path):
    path = tmp_path / "absent.json"
    with pytest.raises(ValueError, match="cannot read") as caught:
        PriceTable.load(str(path))
    assert str(path) in str(caught.value)
