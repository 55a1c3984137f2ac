"""Store tree, settings, roles and curation. Services flush; the caller commits."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Select,
    SQLColumnExpression,
    and_,
    bindparam,
    false,
    func,
    literal_column,
    null,
    or_,
    select,
    union,
    union_all,
)
from sqlalchemy.orm import Session, aliased

from .audit import Actor, AuditLog
from .errors import LastAdministrator, StoreExists, StoreNotFound, StoreRuleViolation
from .models import Membership, Store, StoreExclude, StoreInclude
from .permissions import ROLE_PERMISSIONS, STORE_ROLES, Permission, Role

__all__ = [
    "SETTINGS",
    "STORE_ID_RE",
    "CatalogueLevel",
    "CatalogueScope",
    "MembershipService",
    "StoreService",
    "store_dict",
]

STORE_ID_RE = re.compile(r"[a-z0-9](?:-?[a-z0-9]){1,62}")
SETTINGS = ("name", "private", "manual_review", "allow_inclusion", "offer_parent_catalogue")
SUBSTORE_KINDS = ("product", "ecosystem")
_Curation = TypeVar("_Curation", StoreInclude, StoreExclude)
# Sorts after "/" and every character of a store id (STORE_ID_RE): the paths
# starting with prefix p are exactly those in [p, p || PATH_END), a range any
# btree index answers (LIKE 'p%' is not index-friendly on every backend).
PATH_END = "~"


def _under(path: SQLColumnExpression[str], prefix: SQLColumnExpression[str]) -> ColumnElement[bool]:
    """``path`` starts with ``prefix`` (both store paths), as an index range condition."""
    return and_(path >= prefix, path < prefix + PATH_END)


# The catalogue's one statement, built once: the stores of a path (kind "s": parent id,
# whether it offers its parent's catalogue) and their includes ("i") and excludes ("e").
_CATALOGUE_ROWS: CompoundSelect[str, str, str | None, bool | None] = union_all(
    select(
        literal_column("'s'").label("kind"), Store.id, Store.parent_id.label("value"),
        Store.offer_parent_catalogue.label("offers"),
    ).where(Store.id.in_(bindparam("ids", expanding=True))),
    select(
        literal_column("'i'"), StoreInclude.store_id, StoreInclude.snap_id, null(),
    ).where(StoreInclude.store_id.in_(bindparam("ids", expanding=True))),
    select(
        literal_column("'e'"), StoreExclude.store_id, StoreExclude.snap_id, null(),
    ).where(StoreExclude.store_id.in_(bindparam("ids", expanding=True))),
)  # fmt: skip
_STORE_PATH = select(Store.path).where(Store.id == bindparam("id"))
# store id -> the ids on its path, the store first (stores never move, so it never
# changes; StoreService.catalogue still checks it against the rows it reads)
_chain_memo: dict[str, tuple[str, ...]] = {}


def store_dict(store: Store) -> dict[str, Any]:
    """A store as JSON-ready values (also the audit log's before/after)."""
    return {
        "id": store.id,
        "name": store.name,
        "brand-id": store.brand_id,
        "parent-id": store.parent_id,
        "kind": store.kind,
        "private": store.private,
        "manual-review": store.manual_review,
        "allow-inclusion": store.allow_inclusion,
        "offer-parent-catalogue": store.offer_parent_catalogue,
    }


@dataclass(frozen=True)
class CatalogueLevel:
    """One store on the inheritance path: its own snaps and its includes."""

    store_id: str
    included: frozenset[str]
    # excludes of the levels *below* this one, which hide this level's snaps
    hidden: frozenset[str]


@dataclass(frozen=True)
class CatalogueScope:
    """What a store's catalogue holds, computed in one place (:meth:`StoreService.catalogue`).

    A store sees its own snaps and the snaps it includes; if it offers its
    parent's catalogue, it also sees the parent's (recursively), less what
    it excludes. ``levels[0]`` is the store itself.
    """

    levels: tuple[CatalogueLevel, ...]

    def contains(self, snap_store_id: str, snap_id: str) -> bool:
        """Whether a snap registered in ``snap_store_id`` is in the catalogue."""
        return any(
            (snap_store_id == lv.store_id or snap_id in lv.included) and snap_id not in lv.hidden
            for lv in self.levels
        )

    def sql_filter(
        self, store_column: SQLColumnExpression[str], snap_id_column: SQLColumnExpression[str]
    ) -> ColumnElement[bool]:
        """The same rule as a SQL condition over a snaps table's columns."""
        terms = []
        for lv in self.levels:
            where: ColumnElement[bool] = store_column == lv.store_id
            if lv.included:
                where = or_(where, snap_id_column.in_(sorted(lv.included)))
            if lv.hidden:
                where = and_(where, snap_id_column.not_in(sorted(lv.hidden)))
            terms.append(where)
        return or_(*terms) if terms else false()

    @property
    def store_ids(self) -> list[str]:
        """Stores whose own snaps can appear."""
        return [lv.store_id for lv in self.levels]


class StoreService:
    """The store tree, its settings and curation."""

    def __init__(self, session: Session, audit: AuditLog) -> None:
        self._session = session
        self._audit = audit

    def get(self, store_id: str) -> Store:
        """The store; raises :class:`StoreNotFound`."""
        store = self._session.get(Store, store_id)
        if store is None:
            raise StoreNotFound(f"no store {store_id!r}")
        return store

    def _check_new_id(self, store_id: str) -> None:
        if not STORE_ID_RE.fullmatch(store_id):
            raise StoreRuleViolation(
                "store ids are 2-63 lower-case letters, digits and single hyphens", field="id"
            )
        if self._session.get(Store, store_id) is not None:
            raise StoreExists(f"store {store_id!r} exists already", field="id")

    def create_brand_store(self, actor: Actor, brand_id: str, store_id: str, name: str) -> Store:
        """A brand's root store."""
        self._check_new_id(store_id)
        store = Store(
            id=store_id, name=name, brand_id=brand_id, parent_id=None, kind="brand",
            path=f"{store_id}/",
        )  # fmt: skip
        self._session.add(store)
        self._session.flush()
        self._audit.record(actor, "store.create", store_id=store_id, after=store_dict(store))
        return store

    def create_substore(
        self, actor: Actor, parent_id: str, store_id: str, name: str, kind: str
    ) -> Store:
        """A product or ecosystem store under ``parent_id``; it inherits the brand."""
        if kind not in SUBSTORE_KINDS:
            raise StoreRuleViolation("kind must be product or ecosystem", field="kind")
        parent = self.get(parent_id)
        self._check_new_id(store_id)
        store = Store(
            id=store_id, name=name, brand_id=parent.brand_id, parent_id=parent.id, kind=kind,
            path=f"{parent.path}{store_id}/",
        )  # fmt: skip
        self._session.add(store)
        self._session.flush()
        self._audit.record(actor, "store.create", store_id=store_id, after=store_dict(store))
        return store

    def update(self, actor: Actor, store_id: str, changes: dict[str, Any]) -> Store:
        """Change settings (see :data:`SETTINGS`)."""
        store = self.get(store_id)
        before = store_dict(store)
        for key, value in changes.items():
            if key not in SETTINGS:
                raise StoreRuleViolation(f"unknown setting {key!r}", field=key)
            setattr(store, key, value)
        self._session.flush()
        self._audit.record(
            actor, "store.update", store_id=store_id, before=before, after=store_dict(store)
        )
        return store

    def ancestor_ids(self, store_id: str) -> list[str]:
        """The ids of the store's parents, nearest first (read from its path: no query
        beyond the store itself)."""
        return self.get(store_id).path.split("/")[-3::-1]

    def ancestors(self, store_id: str) -> list[Store]:
        """The store's parents, nearest first (one query)."""
        ids = self.ancestor_ids(store_id)
        if not ids:
            return []
        found = {s.id: s for s in self._session.scalars(select(Store).where(Store.id.in_(ids)))}
        return [found[i] for i in ids if i in found]

    def subtree_ids(self, *roots: str, include_roots: bool = True) -> Select[Any]:
        """A query of the ids of every store below ``roots`` (and the roots unless told not):
        one index range scan of ``stores.path`` per root."""
        root = aliased(Store, name="root")
        query = select(Store.id).join(root, _under(Store.path, root.path)).where(root.id.in_(roots))
        if len(roots) > 1:  # nested roots would repeat their common stores
            query = query.distinct()
        return query if include_roots else query.where(Store.id.not_in(roots))

    def children(self, store_id: str) -> list[Store]:
        """The stores directly below ``store_id``, ordered by id."""
        return list(
            self._session.scalars(
                select(Store).where(Store.parent_id == store_id).order_by(Store.id)
            )
        )

    def descendants(self, store_id: str) -> list[Store]:
        """Every store below ``store_id``, ordered by id."""
        return list(
            self._session.scalars(
                select(Store)
                .where(Store.id.in_(self.subtree_ids(store_id, include_roots=False)))
                .order_by(Store.id)
            )
        )

    def list_stores(
        self,
        store_ids: Sequence[str] | Select[Any] | None,
        after: str = "",
        limit: int = 100,
    ) -> list[Store]:
        """Stores (all, or those in ``store_ids``: a list or a query), ordered by id, paginated."""
        q = select(Store).where(Store.id > after)
        if store_ids is not None:
            q = q.where(Store.id.in_(store_ids))
        return list(self._session.scalars(q.order_by(Store.id).limit(limit)))

    # -- curation ------------------------------------------------------------------

    def catalogue(self, store_id: str) -> CatalogueScope:
        """What the store's catalogue holds: own + included + inherited, less excluded.

        One statement (every device request asks this): the stores on the
        store's path with their includes and excludes. The path comes from a
        per-process memo (stores never move); the rows read back confirm it
        (each store's parent is the next one on it), else it is read afresh.
        """
        chain = _chain_memo.get(store_id)
        rows = self._catalogue_rows(chain, check=True) if chain is not None else None
        if chain is None or rows is None:
            path = self._session.scalar(_STORE_PATH, {"id": store_id})
            if path is None:
                raise StoreNotFound(f"no store {store_id!r}")
            chain = tuple(path.split("/")[-2::-1])
            rows = self._catalogue_rows(chain, check=False)
            assert rows is not None
            if len(_chain_memo) > 100_000:
                _chain_memo.clear()
            _chain_memo[store_id] = chain
        offers, included, excluded = rows
        levels: list[CatalogueLevel] = []
        hidden: set[str] = set()
        for sid in chain:
            levels.append(CatalogueLevel(sid, frozenset(included.get(sid, ())), frozenset(hidden)))
            if not offers.get(sid, False):
                break
            hidden |= excluded.get(sid, set())
        return CatalogueScope(tuple(levels))

    def _catalogue_rows(
        self, chain: tuple[str, ...], *, check: bool
    ) -> tuple[dict[str, bool], dict[str, set[str]], dict[str, set[str]]] | None:
        """(offers parent catalogue, includes, excludes) of each store of ``chain``
        (the store, then its parents, as its path names them). With ``check``, None
        when the stores' parent links do not make that chain (a memo to refresh)."""
        offers: dict[str, bool] = {}
        parents: dict[str, str | None] = {}
        included: dict[str, set[str]] = {}
        excluded: dict[str, set[str]] = {}
        # Core execution (plain rows; flushed first, as the ORM's autoflush would)
        self._session.flush()
        rows = self._session.connection().execute(_CATALOGUE_ROWS, {"ids": chain}).all()
        for kind, sid, value, offer in rows:
            if kind == "s":
                parents[sid] = value
                offers[sid] = bool(offer)
            elif value is not None:  # a snap id: never NULL
                (included if kind == "i" else excluded).setdefault(sid, set()).add(value)
        links = zip(chain, [*chain[1:], None], strict=True)
        if check and any(parents.get(sid, "") != parent for sid, parent in links):
            return None
        # the root offers no parent catalogue whatever its setting says
        offers[chain[-1]] = False
        return offers, included, excluded

    def _curation_row(
        self, table: type[_Curation], store_id: str, snap_id: str
    ) -> _Curation | None:
        return self._session.scalars(
            select(table).where(table.store_id == store_id, table.snap_id == snap_id)
        ).first()

    def include(self, actor: Actor, store_id: str, snap_id: str, source_store_id: str) -> None:
        """Include a snap registered in ``source_store_id``, which must allow inclusion."""
        self.get(store_id)
        source = self.get(source_store_id)
        if source.id == store_id:
            raise StoreRuleViolation("a store's own snaps are in its catalogue already")
        if not source.allow_inclusion:
            raise StoreRuleViolation(
                f"store {source.id!r} does not allow other stores to include its snaps",
                field="snap-id",
            )
        existing = self._curation_row(StoreInclude, store_id, snap_id)
        if existing is None:
            self._session.add(
                StoreInclude(store_id=store_id, snap_id=snap_id, source_store_id=source.id)
            )
            self._session.flush()
            self._audit.record(
                actor, "curation.include", store_id=store_id, target=snap_id,
                after={"snap-id": snap_id, "source-store-id": source.id},
            )  # fmt: skip

    def uninclude(self, actor: Actor, store_id: str, snap_id: str) -> None:
        """Remove an include again."""
        row = self._curation_row(StoreInclude, store_id, snap_id)
        if row is None:
            raise StoreNotFound(f"store {store_id!r} does not include {snap_id!r}")
        before = {"snap-id": snap_id, "source-store-id": row.source_store_id}
        self._session.delete(row)
        self._session.flush()
        self._audit.record(
            actor, "curation.uninclude", store_id=store_id, target=snap_id, before=before
        )

    def exclude(self, actor: Actor, store_id: str, snap_id: str) -> None:
        """Hide a snap the parent's catalogue offers."""
        self.get(store_id)
        existing = self._curation_row(StoreExclude, store_id, snap_id)
        if existing is None:
            self._session.add(StoreExclude(store_id=store_id, snap_id=snap_id))
            self._session.flush()
            self._audit.record(
                actor, "curation.exclude", store_id=store_id, target=snap_id,
                after={"snap-id": snap_id},
            )  # fmt: skip

    def unexclude(self, actor: Actor, store_id: str, snap_id: str) -> None:
        """Show an excluded snap again."""
        row = self._curation_row(StoreExclude, store_id, snap_id)
        if row is None:
            raise StoreNotFound(f"store {store_id!r} does not exclude {snap_id!r}")
        self._session.delete(row)
        self._session.flush()
        self._audit.record(
            actor, "curation.unexclude", store_id=store_id, target=snap_id,
            before={"snap-id": snap_id},
        )  # fmt: skip

    def curation(self, store_id: str) -> tuple[list[StoreInclude], list[StoreExclude]]:
        """The store's includes and excludes."""
        includes = self._session.scalars(
            select(StoreInclude).where(StoreInclude.store_id == store_id)
        )
        excludes = self._session.scalars(
            select(StoreExclude).where(StoreExclude.store_id == store_id)
        )
        return list(includes), list(excludes)


class MembershipService:
    """Store roles: grant, change, remove, and what an account may do where."""

    def __init__(self, session: Session, stores: StoreService, audit: AuditLog) -> None:
        self._session = session
        self._stores = stores
        self._audit = audit

    def roles(self, account_id: str, store_id: str) -> set[Role]:
        """Roles held in the store, plus admin inherited from any ancestor."""
        direct = set(
            self._session.scalars(
                select(Membership.role).where(
                    Membership.store_id == store_id, Membership.account_id == account_id
                )
            )
        )
        roles = {Role(r) for r in direct}
        if Role.ADMIN not in roles:
            ancestor_ids = self._stores.ancestor_ids(store_id)
            if (
                ancestor_ids
                and self._session.scalars(
                    select(Membership.id).where(
                        Membership.store_id.in_(ancestor_ids),
                        Membership.account_id == account_id,
                        Membership.role == Role.ADMIN.value,
                    )
                ).first()
            ):
                roles.add(Role.ADMIN)
        return roles

    def permissions(self, account_id: str, store_id: str) -> frozenset[Permission]:
        """Everything the account's roles allow in the store."""
        out: set[Permission] = set()
        for role in self.roles(account_id, store_id):
            out |= ROLE_PERMISSIONS[role]
        return frozenset(out)

    def visible_store_ids(self, account_id: str) -> Select[Any]:
        """A query of the stores where the account holds a role, plus every store below one
        it administers."""
        direct = select(Membership.store_id).where(Membership.account_id == account_id)
        root = aliased(Store, name="administered")
        below_administered = (
            select(Store.id)
            .join(root, _under(Store.path, root.path))
            .join(Membership, Membership.store_id == root.id)
            .where(Membership.account_id == account_id, Membership.role == Role.ADMIN.value)
        )
        return select(Store.id).where(Store.id.in_(union(direct, below_administered)))

    def direct_roles(self, account_id: str) -> list[tuple[str, str]]:
        """(store id, role) pairs granted to the account directly."""
        rows = self._session.execute(
            select(Membership.store_id, Membership.role)
            .where(Membership.account_id == account_id)
            .order_by(Membership.store_id, Membership.role)
        ).all()
        return [(store_id, role) for store_id, role in rows]

    def members(self, store_id: str, after_id: int = 0, limit: int = 100) -> list[Membership]:
        """Direct memberships of the store, paginated by id."""
        return list(
            self._session.scalars(
                select(Membership)
                .where(Membership.store_id == store_id, Membership.id > after_id)
                .order_by(Membership.id)
                .limit(limit)
            )
        )

    @staticmethod
    def _check_role(role: str) -> Role:
        if role not in {r.value for r in STORE_ROLES}:
            raise StoreRuleViolation(
                "role must be one of admin, publisher, reviewer, viewer", field="role"
            )
        return Role(role)

    def grant(self, actor: Actor, store_id: str, account_id: str, role: str) -> Membership:
        """Give a role (idempotent)."""
        checked = self._check_role(role)
        self._stores.get(store_id)
        existing = self._find(store_id, account_id, checked)
        if existing is not None:
            return existing
        membership = Membership(store_id=store_id, account_id=account_id, role=checked.value)
        self._session.add(membership)
        self._session.flush()
        self._audit.record(
            actor, "role.grant", store_id=store_id, target=account_id,
            after={"account-id": account_id, "role": checked.value},
        )  # fmt: skip
        return membership

    def _find(self, store_id: str, account_id: str, role: Role) -> Membership | None:
        return self._session.scalars(
            select(Membership).where(
                Membership.store_id == store_id,
                Membership.account_id == account_id,
                Membership.role == role.value,
            )
        ).first()

    def _admins_after_removal(self, store_id: str, account_id: str) -> int:
        ids = [store_id, *self._stores.ancestor_ids(store_id)]
        count = self._session.scalar(
            select(func.count(func.distinct(Membership.account_id))).where(
                Membership.store_id.in_(ids),
                Membership.role == Role.ADMIN.value,
                ~and_(Membership.store_id == store_id, Membership.account_id == account_id),
            )
        )
        return int(count or 0)

    def remove(self, actor: Actor, store_id: str, account_id: str, role: str) -> None:
        """Take a role away; a store always keeps an administrator."""
        checked = self._check_role(role)
        membership = self._find(store_id, account_id, checked)
        if membership is None:
            raise StoreNotFound(f"{account_id!r} is not {checked.value} of {store_id!r}")
        if checked is Role.ADMIN and self._admins_after_removal(store_id, account_id) == 0:
            raise LastAdministrator(
                f"{store_id!r} would have no administrator left; grant the role to someone "
                "else first"
            )
        self._session.delete(membership)
        self._session.flush()
        self._audit.record(
            actor, "role.remove", store_id=store_id, target=account_id,
            before={"account-id": account_id, "role": checked.value},
        )  # fmt: skip

    def change(
        self, actor: Actor, store_id: str, account_id: str, old: str, new: str
    ) -> Membership:
        """Replace one role by another in one step."""
        granted = self.grant(actor, store_id, account_id, new)
        if old != new:
            self.remove(actor, store_id, account_id, old)
        return granted
