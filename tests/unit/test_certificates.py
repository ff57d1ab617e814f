"""When a serving certificate is issued again: missing, wrong names, another CA, a third of its life left."""

import datetime as dt

from edgeline.controllers.certificates import SERVING_VALIDITY, ServingContext, renewal_reason
from edgeline.pki import CertificateAuthority

NAMES = ("edgeline-webhook.edgeline-system.svc", "127.0.0.1")
CA = CertificateAuthority.create("test-ca")


def pair(ca=CA, names=NAMES, validity=SERVING_VALIDITY):
    cert, key = ca.issue(names[0], server_names=names, validity=validity)
    return {"ca.crt": ca.cert_pem, "tls.crt": cert, "tls.key": key}


def test_a_fresh_pair_from_our_ca_is_kept():
    now = dt.datetime.now(dt.timezone.utc)
    assert renewal_reason(pair(), NAMES, CA.cert_pem, now) is None
    assert renewal_reason(pair(), NAMES, None, now) is None        # cert-manager's: any CA


def test_a_pair_is_issued_again_before_it_expires():
    now = dt.datetime.now(dt.timezone.utc)
    fresh = pair()
    assert renewal_reason(fresh, NAMES, CA.cert_pem, now + SERVING_VALIDITY * 0.6) is None
    assert "expires at" in renewal_reason(fresh, NAMES, CA.cert_pem, now + SERVING_VALIDITY * 0.7)


def test_missing_renamed_or_foreign_pairs_are_issued_again():
    now = dt.datetime.now(dt.timezone.utc)
    assert renewal_reason(None, NAMES, CA.cert_pem, now) == "no certificate yet"
    assert "lack" in renewal_reason(pair(names=NAMES[:1]), NAMES, CA.cert_pem, now)
    assert renewal_reason(pair(ca=CertificateAuthority.create("other")), NAMES, CA.cert_pem, now) == \
        "it was issued by another CA"


def test_a_serving_context_takes_a_new_pair_while_it_serves():
    serving = ServingContext()
    first, second = pair(), pair()
    serving.load(first)
    context = serving.context
    serving.load(second)
    assert serving.context is context and serving.data["tls.crt"] == second["tls.crt"]
