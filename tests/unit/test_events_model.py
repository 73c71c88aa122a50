"""``DataEvent``'s payload copy (B1): nothing the caller still holds reaches into the event."""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from typing import Any

from app.events import DataEvent


class ListSubclass(list[Any]):
    """A list subclass, as a caller's own container type might be."""


class DictSubclass(dict[str, Any]):
    """A dict subclass, as a caller's own container type might be."""


def test_payload_copies_list_and_dict_subclasses_into_plain_containers() -> None:
    """List/dict subclasses are copied as plain lists/dicts; later changes to them do not show."""
    items = ListSubclass([1, ListSubclass([2])])
    mapping = DictSubclass(a=ListSubclass([3]))
    ordered: OrderedDict[str, Any] = OrderedDict(b=[4])
    counts: defaultdict[str, list[int]] = defaultdict(list, c=[5])
    source = {"items": items, "mapping": mapping, "ordered": ordered, "counts": counts}

    sent = DataEvent("a.b", "r", "k", source)
    items.append(9)
    items[1].append(9)
    mapping["a"].append(9)
    mapping["new"] = 1
    ordered["b"].append(9)
    counts["c"].append(9)
    counts["d"].append(9)

    assert sent.payload == {
        "items": [1, [2]],
        "mapping": {"a": [3]},
        "ordered": {"b": [4]},
        "counts": {"c": [5]},
    }
    assert type(sent.payload["items"]) is list
    assert type(sent.payload["items"][1]) is list
    assert type(sent.payload["mapping"]) is dict
    assert type(sent.payload["mapping"]["a"]) is list
    assert type(sent.payload["counts"]) is dict


def test_top_level_dict_subclass_payload_is_copied() -> None:
    """A payload that is itself a dict subclass becomes a plain dict, detached from the source."""
    source = DictSubclass(n=ListSubclass([1]))
    sent = DataEvent("a.b", "r", "k", source)
    source["n"].append(2)
    source["m"] = 3
    assert sent.payload == {"n": [1]}
    assert type(sent.payload) is dict
    assert type(sent.payload["n"]) is list
