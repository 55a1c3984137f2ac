"""People, brand accounts and the deployment's root authority."""

from .root_authority import (
    RootAuthority,
    RootAuthorityError,
    adopt_root,
    create_root,
    new_account_id,
)

__all__ = ["RootAuthority", "RootAuthorityError", "adopt_root", "create_root", "new_account_id"]
