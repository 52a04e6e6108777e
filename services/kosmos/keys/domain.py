"""API key rules: a storefront or admin key belongs to an existing shop; an operator key to
none. Plain Python; imports no grpc."""

from __future__ import annotations

from dataclasses import dataclass

from kosmos.common.auth import Scope, new_key
from kosmos.common.errors import InvalidArgument, NotFound
from kosmos.common.names import shop_name
from kosmos.store import Store
from kosmos.store.records import ApiKey


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A key just created: as stored, and the full key, shown this once."""

    key: ApiKey
    secret: str


class ApiKeys:
    """Creates, lists and revokes API keys."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def create(self, shop_id: str, scope: Scope, display_name: str = "") -> CreatedKey:
        """Creates a key for ``shop_id`` ('' for an operator key).

        Raises:
            InvalidArgument: An operator key names a shop, or another key names none.
            NotFound: The shop does not exist.
        """
        if scope == Scope.OPERATOR and shop_id:
            raise InvalidArgument("api_key.shop", "NOT_ALLOWED", "operator keys have no shop")
        if scope != Scope.OPERATOR:
            if not shop_id:
                raise InvalidArgument("api_key.shop", "MISSING_FIELD", "is required")
            if self.store.get_shop(shop_id) is None:
                raise NotFound("shop", shop_name(shop_id))
        key_id, full, secret_hash = new_key()
        stored = self.store.create_api_key(
            ApiKey(key_id, shop_id, scope.label, secret_hash, display_name)
        )
        return CreatedKey(stored, full)

    def list(self, shop_id: str | None, after: str, limit: int) -> list[ApiKey]:
        return self.store.list_api_keys(shop_id, after, limit)

    def revoke(self, key_id: str) -> ApiKey:
        """Revokes ``key_id``. Raises NotFound."""
        key = self.store.revoke_api_key(key_id)
        if key is None:
            raise NotFound("api key", f"apiKeys/{key_id}", reason="API_KEY_NOT_FOUND")
        return key
