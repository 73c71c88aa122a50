"""``EntityRegistry``: the entity types a store serves, by name and by table."""

from __future__ import annotations

from collections.abc import Iterator

from app.entities.declaration import EntityFields, EntityType, Parent

__all__ = ["EntityRegistry"]


class EntityRegistry:
    """Entity types in registration order; a parent is registered before its children."""

    def __init__(self) -> None:
        self._by_name: dict[str, EntityType] = {}
        self._by_table: dict[str, EntityType] = {}

    def register(self, name: str, table: str, fields: type[EntityFields]) -> EntityType:
        """Declare an entity type (its table must exist: see the migrations)."""
        if name in self._by_name or table in self._by_table:
            raise ValueError(f"entity type {name!r} (table {table!r}) is registered twice")
        parent_tables: dict[str, str] = {}
        for field, info in fields.model_fields.items():
            for mark in info.metadata:
                if isinstance(mark, Parent):
                    if mark.entity not in self._by_name:
                        raise ValueError(
                            f"{name}.{field} references {mark.entity!r}, which is not "
                            "registered: register the parent type first"
                        )
                    parent_tables[field] = self._by_name[mark.entity].table
        entity = EntityType(name, table, fields, parent_tables)
        self._by_name[name] = entity
        self._by_table[table] = entity
        return entity

    def __iter__(self) -> Iterator[EntityType]:
        return iter(self._by_name.values())

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def get(self, name: str) -> EntityType:
        """The type named ``name`` (``agent``); ``KeyError`` naming the known ones."""
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no entity type {name!r}; known: {sorted(self._by_name)}") from None

    def by_table(self, table: str) -> EntityType:
        return self._by_table[table]

    def children(self, parent: EntityType) -> list[tuple[EntityType, str]]:
        """Every (child type, reference field) that points at ``parent``."""
        return [
            (child, field)
            for child in self
            for field, target in child.parents.items()
            if target == parent.name
        ]
