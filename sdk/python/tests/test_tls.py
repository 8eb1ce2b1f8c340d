"""https:// with a CA bundle and a client certificate, against a server that requires one."""

import datetime as dt
import ipaddress
import os

from cryptography import x509  # the [test] extra
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from auditum import AuditClient, DeliveryError
from conftest import Server


def issue(directory, name, issuer=None, ca=False, server=False):
    """Writes name.pem and name.key: a CA, or a certificate signed by `issuer` (cert, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
    if not ca:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    issuer_cert, issuer_key = issuer or (None, key)
    cert = builder.issuer_name(issuer_cert.subject if issuer_cert else subject).sign(issuer_key, hashes.SHA256())
    cert_path, key_path = os.path.join(directory, f"{name}.pem"), os.path.join(directory, f"{name}.key")
    with open(cert_path, "wb") as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return cert, key, cert_path, key_path


def test_https_with_a_ca_bundle_and_a_client_certificate(tmp_path):
    directory = str(tmp_path)
    ca_cert, ca_key, ca_path, _ = issue(directory, "ca", ca=True)
    _, _, server_cert, server_key = issue(directory, "server", issuer=(ca_cert, ca_key), server=True)
    _, _, client_cert, client_key = issue(directory, "client", issuer=(ca_cert, ca_key))
    os.makedirs(tmp_path / "server")
    server = Server(str(tmp_path / "server"), ["--tls-cert", server_cert, "--tls-key", server_key,
                                               "--tls-client-ca", ca_path]).start()
    url = f"https://127.0.0.1:{server.port}"
    try:
        with AuditClient(url, tenant_id="tls", spool_dir=str(tmp_path / "spool"), tls_ca=ca_path,
                         tls_client_cert=client_cert, tls_client_key=client_key) as client:
            event_id = client.log(action="tls.checked", actor="tester")
            assert client.flush(timeout=30) and client.counters.delivered == 1
            again = client.log_durable(action="tls.checked", actor="tester", id=event_id)
            assert again.duplicate, "the event log() sent over TLS is in the server"

        reported = []
        without = AuditClient(url, tenant_id="tls", spool_dir=str(tmp_path / "spool2"), tls_ca=ca_path,
                              on_error=reported.append)
        without.log(action="tls.checked", actor="tester")
        assert without.flush(timeout=2) is False and without.counters.pending == 1
        assert any(isinstance(error, DeliveryError) for error in reported), "the refused handshake is reported"
        without.close(timeout=0)
    finally:
        server.stop()
