"""Path parameters shared by the routers, with the limits the backends enforce."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import AfterValidator
from starlette.convertors import Convertor, register_url_convertor

__all__ = ["VECTOR_ID_PATH", "LockKey", "Namespace", "StateKey", "VectorId"]

NAMESPACE_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
VECTOR_ID_MAX_CHARS = 128  # at most 4 bytes a character: within the index's 512-byte bound
KEY_MAX_CHARS = 256  # within the state backend's 1024-byte bound
EXTEND_SUFFIX = ":extend"


class _RestOfPath(Convertor[str]):
    """The rest of the path, whatever it holds: ``/`` (which the default ``str`` convertor
    refuses) and control characters (which ``path``'s ``.*`` does not match)."""

    regex = "(?s:.+)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("rest_of_path", _RestOfPath())
# A vector id is the rest of the path, so every id the index accepts has a URL.
VECTOR_ID_PATH = "{vector_id:rest_of_path}"

Namespace = Annotated[str, Path(pattern=NAMESPACE_PATTERN)]
VectorId = Annotated[str, Path(min_length=1, max_length=VECTOR_ID_MAX_CHARS)]
StateKey = Annotated[str, Path(min_length=1, max_length=KEY_MAX_CHARS)]


def _not_an_extend_path(key: str) -> str:
    if key.endswith(EXTEND_SUFFIX):
        msg = (
            f"a lock key must not end in {EXTEND_SUFFIX!r}: POST /v1/locks/{{key}}{EXTEND_SUFFIX} "
            "extends the lock named before it"
        )
        raise ValueError(msg)
    return key


# `/v1/locks/job:extend` is the extend route of `job`: a key ending so would have no URL of its
# own for acquire, and would mean two locks for release.
LockKey = Annotated[StateKey, AfterValidator(_not_an_extend_path)]
