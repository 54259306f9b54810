"""Built-in roles and the permissions they grant (defined in ``contracts.permissions``, the
shared language, because the admin decisions check grants with them too)."""

from contracts.permissions import (
    ALL_PERMISSIONS,
    EDIT_SHARED_CANNED,
    MANAGE_AGENTS,
    MANAGE_CONNECTORS,
    MANAGE_SETTINGS,
    OWNERS_ONLY,
    RANK,
    ROLE_PERMISSIONS,
    SEE_ALL,
    SEE_HISTORY,
    TRANSFER,
    VIEW_AUDIT,
    VIEW_BILLING,
    VIEW_REPORTS,
    effective_permissions,
)

__all__ = [
    "ALL_PERMISSIONS",
    "EDIT_SHARED_CANNED",
    "MANAGE_AGENTS",
    "MANAGE_CONNECTORS",
    "MANAGE_SETTINGS",
    "OWNERS_ONLY",
    "RANK",
    "ROLE_PERMISSIONS",
    "SEE_ALL",
    "SEE_HISTORY",
    "TRANSFER",
    "VIEW_AUDIT",
    "VIEW_BILLING",
    "VIEW_REPORTS",
    "effective_permissions",
]
