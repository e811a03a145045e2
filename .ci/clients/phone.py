"""A phone's day, through the Python client openapi-python-client generates from the
committed OpenAPI document and nothing else (issue 16): signs in with password and TOTP,
logs an activity with its course certificate attached, asks the main supervisor for an
assessment, reads progress and syncs the changes feed. Run by .ci/clients.sh against a
running server seeded by `eportfolio demo`:

    python3 phone.py BASE_URL EMAIL PASSWORD TOTP_SECRET

Every call goes through the generated functions and models; the TOTP code is computed
here (RFC 6238), as an authenticator app would. Fails (exit 1) on any unexpected answer.
"""

import base64
import datetime
import hashlib
import hmac
import io
import struct
import sys
import time
import uuid

from eportfolio_client import AuthenticatedClient, Client
from eportfolio_client.api.assessments import create_assessment
from eportfolio_client.api.auth import login, mfa_verify
from eportfolio_client.api.enrolment import get_enrolment, list_changes, list_enrolments
from eportfolio_client.api.portfolio import create_activity, upload_attachment
from eportfolio_client.api.progress import get_progress
from eportfolio_client.models import (
    Activity,
    ActivityKind,
    Assessment,
    AssessmentType,
    Attachment,
    AuthenticatedResponse,
    Enrolment,
    LoginRequest,
    MfaMethod,
    MfaRequiredResponse,
    NewActivity,
    NewAssessment,
    PageChange,
    PageEnrolment,
    Progress,
    VerifyRequest,
)
from eportfolio_client.types import File

# The smallest PDF the server's content check takes for one.
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


def totp(secret: str, at: float) -> str:
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    mac = hmac.new(key, struct.pack(">Q", int(at) // 30), hashlib.sha1).digest()
    off = mac[-1] & 15
    return "%06d" % ((struct.unpack(">I", mac[off : off + 4])[0] & 0x7FFFFFFF) % 1000000)


def expect(value, kind, what):
    if not isinstance(value, kind):
        sys.exit(f"phone: {what}: expected {kind.__name__}, got {value!r}")
    return value


def main(base: str, email: str, password: str, secret: str) -> None:
    anonymous = Client(base_url=base, raise_on_unexpected_status=True)

    # Password, then the second factor: the answer's type says which step this is.
    step = login.sync(client=anonymous, body=LoginRequest(email=email, password=password))
    step = expect(step, MfaRequiredResponse, "login")
    assert MfaMethod.TOTP in step.methods, step.methods
    done = mfa_verify.sync(
        client=anonymous,
        body=VerifyRequest(mfa_token=step.mfa_token, method=MfaMethod.TOTP, code=totp(secret, time.time())),
    )
    done = expect(done, AuthenticatedResponse, "second factor")
    api = AuthenticatedClient(base_url=base, token=done.access_token, raise_on_unexpected_status=True)

    # My enrolment, and who supervises me.
    page = expect(list_enrolments.sync(client=api, limit=10), PageEnrolment, "enrolments")
    enrolment = expect(get_enrolment.sync(page.items[0].id, client=api), Enrolment, "enrolment")
    supervisor = next(a.user_id for a in enrolment.assignments if a.role.value == "main_supervisor" and a.active)

    # Log an activity, safe to retry offline, and attach the course certificate.
    activity = create_activity.sync(
        enrolment.id,
        client=api,
        body=NewActivity(
            kind=ActivityKind.COURSE,
            title="Försäkringsmedicinsk dag",
            start_date=datetime.date.today() - datetime.timedelta(days=1),
            delmal=["BT16"],
        ),
        idempotency_key=str(uuid.uuid4()),
    )
    activity = expect(activity, Activity, "activity")
    attached = upload_attachment.sync(
        activity.id,
        client=api,
        body=File(payload=io.BytesIO(PDF), file_name="kursintyg-försäkringsmedicin.pdf", mime_type="application/pdf"),
        filename="kursintyg-försäkringsmedicin.pdf",
    )
    attached = expect(attached, Attachment, "attachment")
    assert attached.content_type == "application/pdf", attached.content_type
    assert attached.sha256 == hashlib.sha256(PDF).hexdigest(), attached.sha256

    # Ask the main supervisor for a DOPS.
    asked = create_assessment.sync(
        enrolment.id,
        client=api,
        body=NewAssessment(
            instrument=AssessmentType.DOPS,
            performed_on=datetime.date.today() - datetime.timedelta(days=1),
            assessor_id=supervisor,
            delmal=["BT1"],
        ),
        idempotency_key=str(uuid.uuid4()),
    )
    asked = expect(asked, Assessment, "assessment")

    # Progress, and the changes feed a phone syncs from, page by page.
    progress = expect(get_progress.sync(enrolment.id, client=api), Progress, "progress")
    changes, cursor = [], None
    while True:
        page = list_changes.sync(enrolment.id, client=api, limit=50, **({"cursor": cursor} if cursor else {}))
        page = expect(page, PageChange, "changes")
        changes.extend(page.items)
        cursor = page.next_cursor
        if not cursor:
            break
    # Record ids are UUIDs (`format: uuid`); the feed's entity ids are text (a dossier's
    # id is no UUID), so they are compared as text.
    created = {c.entity_id for c in changes}
    assert str(activity.id) in created and str(asked.id) in created, "the feed lacks the new records"
    assert isinstance(activity.created_at, datetime.datetime) and activity.created_at.tzinfo
    print(
        f"phone: signed in, logged {activity.id} with {attached.filename}, asked {asked.status.value}, "
        f"{len(progress.delmal)} delmål in progress, {len(changes)} changes synced"
    )


if __name__ == "__main__":
    main(*sys.argv[1:5])
