"""`StackCA`: the stack's own certificate authority, declared with the official pulumi-tls provider.

Why a CA in the state: pgBackRest's TLS server (pgha:backup) authenticates both ends with
certificates, and the TLS issue will reuse the same CA for every other link. Keys and
certificates are pulumi-tls resources, so private keys exist only as secrets in the
stack's state (encrypted with its passphrase) and in the env of the one container each
belongs to; nothing is written to disk on the host. ECDSA P-256 keys: small PEMs in env,
fast handshakes on 2 cores.

Lifetimes: the CA lasts 10 years; a member's certificate one year and is renewed by the
first `pulumi up` in its last 30 days (pulumi-tls's early renewal), which replaces the
container that holds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_tls as tls

CA_VALIDITY_H = 10 * 365 * 24
LEAF_VALIDITY_H = 365 * 24
LEAF_EARLY_RENEWAL_H = 30 * 24


@dataclass
class StackCAArgs:
    # `pgha-<stack>`: the CA's common name, so two stacks' CAs are told apart.
    prefix: str


@dataclass
class Issued:
    """One member's certificate and key (PEM), both signed by the stack CA."""

    cert_pem: pulumi.Output[str]
    key_pem: pulumi.Output[str]


class StackCA(pulumi.ComponentResource):
    cert_pem: pulumi.Output[str]

    def __init__(
        self, name: str, args: StackCAArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("pgha:index:StackCA", name, None, opts)
        self._name = name
        self._key = tls.PrivateKey(
            f"{name}-key",
            tls.PrivateKeyArgs(algorithm="ECDSA", ecdsa_curve="P256"),
            pulumi.ResourceOptions(parent=self),
        )
        cert = tls.SelfSignedCert(
            f"{name}-cert",
            tls.SelfSignedCertArgs(
                private_key_pem=self._key.private_key_pem,
                is_ca_certificate=True,
                validity_period_hours=CA_VALIDITY_H,
                allowed_uses=["cert_signing", "crl_signing", "digital_signature"],
                subject=tls.SelfSignedCertSubjectArgs(
                    common_name=f"{args.prefix} CA", organization="pgha"
                ),
            ),
            pulumi.ResourceOptions(parent=self),
        )
        self.cert_pem = cert.cert_pem
        self.register_outputs({"cert_pem": self.cert_pem})

    def issue(self, member: str, dns_names: Sequence[str] = ()) -> Issued:
        """A key and a certificate for `member` (its common name, and a DNS name with the
        `dns_names`), good for both ends of a TLS connection: pgBackRest's servers are also
        clients of each other."""
        key = tls.PrivateKey(
            f"{self._name}-{member}-key",
            tls.PrivateKeyArgs(algorithm="ECDSA", ecdsa_curve="P256"),
            pulumi.ResourceOptions(parent=self),
        )
        request = tls.CertRequest(
            f"{self._name}-{member}-csr",
            tls.CertRequestArgs(
                private_key_pem=key.private_key_pem,
                subject=tls.CertRequestSubjectArgs(common_name=member, organization="pgha"),
                dns_names=[member, *dns_names],
            ),
            pulumi.ResourceOptions(parent=self),
        )
        cert = tls.LocallySignedCert(
            f"{self._name}-{member}-cert",
            tls.LocallySignedCertArgs(
                cert_request_pem=request.cert_request_pem,
                ca_private_key_pem=self._key.private_key_pem,
                ca_cert_pem=self.cert_pem,
                validity_period_hours=LEAF_VALIDITY_H,
                early_renewal_hours=LEAF_EARLY_RENEWAL_H,
                allowed_uses=[
                    "digital_signature",
                    "key_encipherment",
                    "server_auth",
                    "client_auth",
                ],
            ),
            pulumi.ResourceOptions(parent=self),
        )
        return Issued(cert_pem=cert.cert_pem, key_pem=key.private_key_pem)
