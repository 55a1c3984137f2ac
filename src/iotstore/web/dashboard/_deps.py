"""The permission-checked contexts dashboard routes take (one ``require`` each, as everywhere)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from iotstore.stores.permissions import Permission

from ..auth import require
from ..context import RequestContext
from ._render import Form, form_fields

__all__ = [
    "AuditView",
    "BrandKeys",
    "BrandView",
    "Curate",
    "DevicesManage",
    "DevicesView",
    "FormDep",
    "MembersManage",
    "MembersView",
    "Operator",
    "Public",
    "Self",
    "SnapCollaborators",
    "SnapRegister",
    "SnapRelease",
    "SnapReview",
    "SnapView",
    "StoreManage",
    "StoreView",
    "Vault",
]

Public = Annotated[RequestContext, Depends(require(Permission.PUBLIC))]
Self = Annotated[RequestContext, Depends(require(Permission.ACCOUNT_SELF))]
Operator = Annotated[RequestContext, Depends(require(Permission.BRANDS_CREATE))]
StoreView = Annotated[RequestContext, Depends(require(Permission.STORE_VIEW))]
StoreManage = Annotated[RequestContext, Depends(require(Permission.STORE_MANAGE))]
MembersView = Annotated[RequestContext, Depends(require(Permission.MEMBERS_VIEW))]
MembersManage = Annotated[RequestContext, Depends(require(Permission.MEMBERS_MANAGE))]
Curate = Annotated[RequestContext, Depends(require(Permission.CURATION_MANAGE))]
AuditView = Annotated[RequestContext, Depends(require(Permission.AUDIT_VIEW))]
BrandView = Annotated[RequestContext, Depends(require(Permission.BRAND_VIEW))]
BrandKeys = Annotated[RequestContext, Depends(require(Permission.BRAND_KEYS_MANAGE))]
Vault = Annotated[RequestContext, Depends(require(Permission.VAULT_MANAGE))]
DevicesView = Annotated[RequestContext, Depends(require(Permission.DEVICES_VIEW))]
DevicesManage = Annotated[RequestContext, Depends(require(Permission.DEVICES_MANAGE))]
SnapView = Annotated[RequestContext, Depends(require(Permission.SNAP_VIEW))]
SnapRegister = Annotated[RequestContext, Depends(require(Permission.SNAP_REGISTER))]
SnapCollaborators = Annotated[RequestContext, Depends(require(Permission.SNAP_COLLABORATORS))]
SnapRelease = Annotated[RequestContext, Depends(require(Permission.SNAP_RELEASE))]
SnapReview = Annotated[RequestContext, Depends(require(Permission.SNAP_REVIEW))]

# read after the context: a refused caller's body is never parsed
FormDep = Annotated[Form, Depends(form_fields)]
