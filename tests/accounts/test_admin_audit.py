"""Changes made in /admin/ to users and groups (roles) are audited like any other change,
and the registry's admin pages are a read-only view."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.test import Client

from accounts import services as accounts
from accounts.models import Role
from tests.conftest import set_open_policy

pytestmark = pytest.mark.django_db

User = get_user_model()


@pytest.fixture
def root():
    admin = accounts.user_create(username="root", role="admin", password="root-pw-1")
    browser = Client()
    browser.force_login(admin)
    token = accounts.token_create(user=admin, name="audit-reader")[1]
    return browser, Client(HTTP_AUTHORIZATION=f"Bearer {token}")


def events(api: Client, **filters) -> list[dict]:
    response = api.get("/api/v1/audit/events", {"limit": 1000, **filters})
    assert response.status_code == 200, response.content
    return response.json()["events"]


def change_form(user) -> dict:
    """The change form's fields as the admin page would post them, unchanged."""
    return {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_active": "on" if user.is_active else "",
        "roles": list(user.groups.filter(name__in=Role.values).values_list("name", flat=True)),
        "teams": [
            str(pk) for pk in user.groups.exclude(name__in=Role.values).values_list("pk", flat=True)
        ],
        "last_login_0": "",
        "last_login_1": "",
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
    }


def post_change(browser: Client, user, **changes):
    body = {k: v for k, v in {**change_form(user), **changes}.items() if v != ""}
    response = browser.post(f"/admin/auth/user/{user.pk}/change/", body)
    assert response.status_code == 302, response.content.decode()[:3000]
    return response


def test_creating_a_user_in_the_admin_is_audited(root):
    browser, api = root
    response = browser.post(
        "/admin/auth/user/add/",
        {
            "username": "newbie",
            "role": "reviewer",
            "usable_password": "true",
            "password1": "a-long-new-password-9",
            "password2": "a-long-new-password-9",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    user = User.objects.get(username="newbie")
    assert user.check_password("a-long-new-password-9")
    (created,) = events(api, action="user.create", actor="root")
    assert created["object"]["name"] == "newbie"
    assert created["after"]["roles"] == ["reviewer"]
    assert created["actor"]["auth_method"] == "session"
    assert "password" not in created["after"]


def test_roles_and_teams_changed_in_the_admin_are_audited_and_set_the_flags(root):
    """The change form edits roles and teams, never Django's raw permission list; the
    staff and superuser flags follow the roles."""
    browser, api = root
    bob = accounts.user_create(username="bob", role="data-scientist", password="bob-pw-12345")
    assert bob.has_usable_password() and bob.password
    page = browser.get(f"/admin/auth/user/{bob.pk}/change/").content.decode()
    assert 'name="roles"' in page and 'name="teams"' in page
    for raw in ('name="user_permissions"', 'name="is_superuser"', 'name="is_staff"'):
        assert raw not in page
    post_change(browser, bob, email="bob@example.com")
    (update,) = events(api, action="user.update", actor="root")
    assert update["after"]["email"] == "bob@example.com"

    bob.refresh_from_db()
    team = Group.objects.create(name="fraud-team")
    post_change(browser, bob, roles=["admin"], teams=[str(team.pk)])
    (roles,) = events(api, action="user.roles.set")
    assert roles["before"]["roles"] == ["data-scientist"]
    assert roles["after"]["roles"] == ["admin", "fraud-team"]
    assert roles["before"]["is_superuser"] is False and roles["after"]["is_superuser"] is True
    bob.refresh_from_db()
    assert bob.is_staff and bob.is_superuser
    # A user keeps at least one role.
    refused = browser.post(f"/admin/auth/user/{bob.pk}/change/", {**change_form(bob), "roles": []})
    assert refused.status_code == 200 and "This field is required" in refused.content.decode()
    post_change(browser, bob, roles=["reviewer"], teams=[])
    bob.refresh_from_db()
    assert bob.is_staff and not bob.is_superuser
    assert list(bob.groups.values_list("name", flat=True)) == ["reviewer"]

    bob.refresh_from_db()
    post_change(browser, bob, is_active="")
    (deactivated,) = events(api, action="user.deactivate")
    assert deactivated["before"]["is_active"] is True and deactivated["after"]["is_active"] is False
    bob.refresh_from_db()
    user_events = events(api, object_type="user")
    assert len(user_events) >= 5
    for event in user_events:
        assert "password" not in (event["before"] or {})
        assert bob.password not in str(event["before"]) + str(event["after"])


def test_unchanged_save_records_nothing(root):
    browser, api = root
    bob = accounts.user_create(username="bob", role="data-scientist")
    before = len(events(api))
    post_change(browser, bob)
    assert len(events(api)) == before


def test_password_change_in_the_admin_records_only_that_it_changed(root):
    browser, api = root
    bob = accounts.user_create(username="bob", role="data-scientist", password="old-pw-123")
    response = browser.post(
        f"/admin/auth/user/{bob.pk}/password/",
        {
            "usable_password": "true",
            "password1": "brand-new-pw-456",
            "password2": "brand-new-pw-456",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    bob.refresh_from_db()
    assert bob.check_password("brand-new-pw-456")
    (changed,) = events(api, action="user.password.change")
    assert changed["object"]["name"] == "bob" and changed["after"] == {"password": "changed"}
    assert bob.password not in str(changed)


def test_deleting_a_user_in_the_admin_is_audited(root):
    browser, api = root
    bob = accounts.user_create(username="bob", role="data-scientist")
    response = browser.post(f"/admin/auth/user/{bob.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not User.objects.filter(username="bob").exists()
    (deleted,) = events(api, action="user.delete")
    assert deleted["object"]["name"] == "bob" and deleted["after"] is None
    assert deleted["before"]["roles"] == ["data-scientist"]


def test_group_changes_in_the_admin_are_audited(root):
    browser, api = root
    perm = Permission.objects.get(codename="view_auditevent")
    response = browser.post(
        "/admin/auth/group/add/", {"name": "auditors", "permissions": [str(perm.pk)]}
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    group = Group.objects.get(name="auditors")
    (created,) = events(api, action="group.create")
    assert created["after"]["name"] == "auditors"
    (perms,) = events(api, action="group.permissions.set")
    assert perms["after"]["permissions"] == ["audit.view_auditevent"]
    response = browser.post(f"/admin/auth/group/{group.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    (deleted,) = events(api, action="group.delete")
    assert deleted["before"]["name"] == "auditors"


def test_registry_admin_is_read_only(root, api, unique_name):
    browser, _ = root
    from registry.models import ModelVersion, RegisteredModel

    run = api.run(api.experiment())
    api.post("registered-models/create", {"name": unique_name})
    set_open_policy(unique_name)
    api.post(
        "model-versions/create",
        {"name": unique_name, "source": f"runs:/{run['info']['run_id']}/model"},
    )
    model = RegisteredModel.objects.get(name=unique_name)
    version = ModelVersion.objects.get(registered_model=model)
    page = browser.get(f"/admin/registry/modelversion/{version.pk}/change/")
    assert page.status_code == 200
    assert b'name="description"' not in page.content and b'name="run_link"' not in page.content
    for url, body in (
        (
            f"/admin/registry/modelversion/{version.pk}/change/",
            {"description": "edited quietly", "run_link": "http://x", "stage_since": "1"},
        ),
        (f"/admin/registry/registeredmodel/{model.pk}/change/", {"description": "edited"}),
    ):
        assert browser.post(url, body).status_code == 403
    version.refresh_from_db()
    model.refresh_from_db()
    assert version.description == "" and model.description == ""


def test_activation_is_recorded_alike_from_the_admin_and_the_service(root):
    browser, api = root
    bob = accounts.user_create(username="bob", role="data-scientist")
    carol = accounts.user_create(username="carol", role="data-scientist")
    post_change(browser, bob, is_active="")
    accounts.user_set_active(user=carol, is_active=False)
    deactivated = events(api, action="user.deactivate")
    assert [e["object"]["name"] for e in deactivated] == ["bob", "carol"]
    assert not events(api, action="user.update")
    bob.refresh_from_db()
    post_change(browser, bob, is_active="on")
    (activated,) = events(api, action="user.activate")
    assert activated["object"]["name"] == "bob" and activated["after"]["is_active"] is True


def test_deactivating_and_editing_at_once_records_both_changes(root):
    browser, api = root
    bob = accounts.user_create(username="bob", role="data-scientist")
    post_change(browser, bob, is_active="", email="gone@example.com")
    (update,) = events(api, action="user.update")
    assert update["after"]["email"] == "gone@example.com" and update["after"]["is_active"]
    (deactivated,) = events(api, action="user.deactivate")
    assert deactivated["before"]["email"] == "gone@example.com"
    assert deactivated["before"]["is_active"] is True and deactivated["after"]["is_active"] is False


def test_last_login_and_date_joined_are_read_only_in_the_admin(root):
    browser, api = root
    bob = accounts.user_create(username="bob", role="data-scientist")
    page = browser.get(f"/admin/auth/user/{bob.pk}/change/")
    assert page.status_code == 200
    assert b'name="date_joined_0"' not in page.content
    assert b'name="last_login_0"' not in page.content
    joined = bob.date_joined
    post_change(
        browser,
        bob,
        date_joined_0="2001-01-01",
        date_joined_1="00:00:00",
        last_login_0="2001-01-01",
        last_login_1="00:00:00",
    )
    bob.refresh_from_db()
    assert bob.date_joined == joined and bob.last_login is None
