"""The one table that maps permissions to roles. Every endpoint names one permission.

Store roles are granted per store; an administrator of a store administers
every store below it. The collaborator role is granted per snap by its
publisher. Anything not in this table is denied.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ACCOUNT_PERMISSIONS", "ROLE_PERMISSIONS", "STORE_ROLES", "Permission", "Role"]


class Role(StrEnum):
    """Roles a person can hold."""

    ADMIN = "admin"
    PUBLISHER = "publisher"
    REVIEWER = "reviewer"
    VIEWER = "viewer"
    COLLABORATOR = "collaborator"


STORE_ROLES = (Role.ADMIN, Role.PUBLISHER, Role.REVIEWER, Role.VIEWER)


class Permission(StrEnum):
    """Everything an endpoint may require."""

    # store scope
    STORE_VIEW = "store:view"
    STORE_MANAGE = "store:manage"
    MEMBERS_VIEW = "members:view"
    MEMBERS_MANAGE = "members:manage"
    CURATION_MANAGE = "curation:manage"
    AUDIT_VIEW = "audit:view"
    BRAND_VIEW = "brand:view"
    BRAND_KEYS_MANAGE = "brand-keys:manage"
    VAULT_MANAGE = "vault:manage"
    DEVICES_VIEW = "devices:view"
    DEVICES_MANAGE = "devices:manage"
    SNAP_REGISTER = "snap:register"
    SNAP_COLLABORATORS = "snap:collaborators"
    SNAP_UPLOAD = "snap:upload"
    SNAP_RELEASE = "snap:release"
    SNAP_REVIEW = "snap:review"
    SNAP_VIEW = "snap:view"
    SNAP_DOWNLOAD = "snap:download"
    # account scope: what any signed-in person may do for themself
    ACCOUNT_SELF = "account:self"
    # deployment scope
    BRANDS_CREATE = "brands:create"
    PUBLIC = "public"


_VIEW = {Permission.STORE_VIEW, Permission.SNAP_VIEW}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(
        {
            *_VIEW,
            Permission.STORE_MANAGE,
            Permission.MEMBERS_VIEW,
            Permission.MEMBERS_MANAGE,
            Permission.CURATION_MANAGE,
            Permission.AUDIT_VIEW,
            Permission.BRAND_VIEW,
            Permission.BRAND_KEYS_MANAGE,
            Permission.VAULT_MANAGE,
            Permission.DEVICES_VIEW,
            Permission.DEVICES_MANAGE,
            Permission.SNAP_DOWNLOAD,
        }
    ),
    Role.PUBLISHER: frozenset(
        {
            *_VIEW,
            Permission.MEMBERS_VIEW,
            Permission.SNAP_REGISTER,
            Permission.SNAP_COLLABORATORS,
            Permission.SNAP_UPLOAD,
            Permission.SNAP_RELEASE,
            Permission.SNAP_DOWNLOAD,
        }
    ),
    Role.COLLABORATOR: frozenset(
        {*_VIEW, Permission.SNAP_UPLOAD, Permission.SNAP_RELEASE, Permission.SNAP_DOWNLOAD}
    ),
    Role.REVIEWER: frozenset({*_VIEW, Permission.SNAP_REVIEW, Permission.SNAP_DOWNLOAD}),
    Role.VIEWER: frozenset({*_VIEW, Permission.SNAP_DOWNLOAD}),
}

# Permissions that need no store: any authenticated account has ACCOUNT_SELF;
# BRANDS_CREATE belongs to deployment operators; PUBLIC needs nothing at all.
ACCOUNT_PERMISSIONS = frozenset({Permission.ACCOUNT_SELF})
