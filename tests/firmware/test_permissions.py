# auth.PERMISSIONS is the one table of who may change what: it names exactly the change ops the app's ops
# table has, each under one role (CPython and micropython).
import pytest
from test_app import Rig

from itpump import auth, protocol

pytestmark = pytest.mark.micropython


def test_permissions_name_exactly_the_change_ops():
    r = Rig()
    changes = []
    table = r.a.ops
    for name in table:
        if protocol.op_entry(table, name)[1] == protocol.CHANGE:
            changes.append(name)
    listed = []
    for role in auth.ROLES:
        listed.extend(auth.PERMISSIONS[role])
    assert len(auth.PERMISSIONS) == len(auth.ROLES)
    assert sorted(listed) == sorted(changes), (sorted(listed), sorted(changes))
    r.close()


def test_the_app_guards_suspend_and_cancel_as_the_clinician():
    r = Rig()
    for op in ("suspend", "cancel_bolus"):
        assert r.a.auth.guards(op)
        assert op in auth.PERMISSIONS[auth.CLINICIAN]
    r.close()
