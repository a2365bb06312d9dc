"""The harness waits for a cluster-info signature kubeadm's token discovery will accept
(tests/support/controlplane.py ``jws_valid``): checked against the vectors of
k8s.io/cluster-bootstrap v0.36.5 token/jws/jws_test.go (the signer's and kubeadm's own code)."""

from __future__ import annotations

import pytest

from tests.support.controlplane import jws_valid

CONTENT = "Hello from the other side. I must have called a thousand times."
SECRET = "my voice is my passcode"
ID = "joshua"
HEADER = "eyJhbGciOiJIUzI1NiIsImtpZCI6Impvc2h1YSJ9"  # {"alg":"HS256","kid":"joshua"}


@pytest.mark.parametrize(("signature", "content", "token_id", "secret", "valid"), [
    (f"{HEADER}..VShe2taLd-YTrmWuRkcL_8QTNDHYxQIEBsAYYiIj1_8", CONTENT, ID, SECRET, True),
    (f"{HEADER}..7Ui1ALizW4jXphVUB7xUqC9vLYLL9RZeOFfVLoB7Tgk", "", ID, SECRET, True),
    (f"{HEADER}..UfkqvDGiIFxrMnFseDj9LYJOLNrvjW8aHhF71mvvAs8", CONTENT, ID, "", True),
    # a signature of what cluster-info held before a change (the stale one kubeadm refuses)
    (f"{HEADER}..VShe2taLd-YTrmWuRkcL_8QTNDHYxQIEBsAYYiIj1_8", CONTENT + "\n", ID, SECRET, False),
    (f"{HEADER}..VShe2taLd-YTrmWuRkcL_8QTNDHYxQIEBsAYYiIj1_8", CONTENT, ID, SECRET + "x", False),
    (f"{HEADER}..VShe2taLd-YTrmWuRkcL_8QTNDHYxQIEBsAYYiIj1_8", CONTENT, "abcdef", SECRET, False),  # another kid
    ("not a jws", CONTENT, ID, SECRET, False),
])
def test_a_detached_signature_is_judged_as_kubeadm_judges_it(signature: str, content: str, token_id: str,
                                                             secret: str, valid: bool) -> None:
    assert jws_valid(signature, content, token_id, secret) is valid
