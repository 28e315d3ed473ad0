"""Who may do what on the web surface (SPEC §3, §9): super users administer everything, a
department head manages their departments (documents, clearances, schedules), everyone else
sees only their own data. Pure checks on a directory user, no I/O: the web chat and the admin
console ask here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from storage.users import User


class Role(StrEnum):
    SUPER_USER = "super_user"
    DEPARTMENT_HEAD = "department_head"
    MEMBER = "member"


def role_of(user: User) -> Role:
    """The widest role the person has."""
    if user.is_super_user:
        return Role.SUPER_USER
    if user.dept_head_for:
        return Role.DEPARTMENT_HEAD
    return Role.MEMBER


def managed_departments(user: User) -> frozenset[str] | None:
    """The departments the person manages; None means all of them (a super user)."""
    if not user.is_active:
        return frozenset()
    if user.is_super_user:
        return None
    return frozenset(user.dept_head_for)


def may_manage(user: User, department: str) -> bool:
    """True when the person may change the department's documents, clearances and schedules."""
    managed = managed_departments(user)
    return managed is None or department in managed


def may_administer(user: User) -> bool:
    """True for what belongs to no department: the directory, alert rules, the audit log."""
    return user.is_active and user.is_super_user


def may_open_console(user: User) -> bool:
    """True when the admin console has anything for the person beyond their own data."""
    return role_of(user) is not Role.MEMBER and user.is_active


def may_see_person(user: User, other: User) -> bool:
    """Oneself always; a super user anyone; a department head the people who read one of the
    departments they manage."""
    if user.id == other.id and user.tenant_id == other.tenant_id:
        return user.is_active
    if user.tenant_id != other.tenant_id:
        return False
    managed = managed_departments(user)
    return managed is None or bool(managed & set(other.department_access))


def readable_departments(user: User, public: Iterable[str]) -> frozenset[str] | None:
    """The departments whose documents the person reads, as retrieval decides (SPEC §3: their
    access and the public ones); None means all (a super user)."""
    if user.is_super_user:
        return None
    return frozenset(user.department_access) | frozenset(public)


def may_join_channel(user: User, cleared: Iterable[str], public: Iterable[str]) -> bool:
    """A web channel is open to its members: those who read a department it is cleared for
    (a public department's channel: everyone). A channel cleared for nothing is the super
    users' alone."""
    if not user.is_active:
        return False
    readable = readable_departments(user, public)
    return readable is None or any(d in readable for d in cleared)
