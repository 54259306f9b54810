"""Built-in roles, the permissions they grant, and who may grant what.

Permission names are stable strings checked by HTTP routes and websocket ops (the gateway)
and by the admin decisions that hand them out (docs/security.md, 4); permission groups add
to a role's permissions.
"""

SEE_ALL = "see_all_conversations"
SEE_HISTORY = "see_history"
TRANSFER = "transfer"
EDIT_SHARED_CANNED = "edit_shared_canned"
MANAGE_AGENTS = "manage_agents"
MANAGE_SETTINGS = "manage_settings"
MANAGE_CONNECTORS = "manage_connectors"
VIEW_BILLING = "view_billing"
VIEW_AUDIT = "view_audit"
VIEW_REPORTS = "view_reports"

ALL_PERMISSIONS = frozenset(
    {
        SEE_ALL,
        SEE_HISTORY,
        TRANSFER,
        EDIT_SHARED_CANNED,
        MANAGE_AGENTS,
        MANAGE_SETTINGS,
        MANAGE_CONNECTORS,
        VIEW_BILLING,
        VIEW_AUDIT,
        VIEW_REPORTS,
    }
)

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "owner": ALL_PERMISSIONS,
    "admin": ALL_PERMISSIONS,
    "supervisor": frozenset(
        {SEE_ALL, SEE_HISTORY, TRANSFER, EDIT_SHARED_CANNED, VIEW_REPORTS, VIEW_AUDIT}
    ),
    "agent": frozenset({SEE_HISTORY, TRANSFER}),
}
# Higher holds more: each role's permissions include those of the roles below it.
RANK = {"agent": 0, "supervisor": 1, "admin": 2, "owner": 3}
OWNERS_ONLY = frozenset({"owner", "admin"})  # roles only an owner may grant


def effective_permissions(role: str, granted: list[str] | tuple[str, ...] = ()) -> frozenset[str]:
    """The role's permissions plus those granted by permission groups (unknown names dropped)."""
    return ROLE_PERMISSIONS.get(role, frozenset()) | (frozenset(granted) & ALL_PERMISSIONS)
