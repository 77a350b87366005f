"""Start moto_server with two fidelity fixes.

1. IoT: moto's CreateCertificateFromCsr ignores the CSR's public key, never
   checks its signature and ignores setAsActive=false. AWS issues a certificate
   for the CSR's own key, so a device keeps its private key to itself.
2. DynamoDB: moto's threaded server runs writes concurrently without a lock, so
   two conditional writes on one item can both pass their condition. DynamoDB
   applies each write (and each transaction) atomically; a lock restores that.
"""

import copy
import functools
import sys
import threading
from datetime import timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from moto.core.utils import utcnow
from moto.dynamodb import models as dynamodb_models
from moto.iot import models
from moto.iot.exceptions import InvalidRequestException
from moto.server import main

_CA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_CA_NAME = x509.Name(
    [
        x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, "Moto"),
        x509.NameAttribute(x509.NameOID.COMMON_NAME, "Moto Local IoT CA"),
    ]
)


def create_certificate_from_csr(self, csr, set_as_active):
    try:
        request = x509.load_pem_x509_csr(csr.encode("utf-8"))
    except ValueError as exc:
        raise InvalidRequestException("The certificate signing request is not valid.") from exc
    if not request.is_signature_valid:
        raise InvalidRequestException("The certificate signing request signature is not valid.")
    cert = (
        x509.CertificateBuilder()
        .subject_name(request.subject)
        .issuer_name(_CA_NAME)
        .public_key(request.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(utcnow() - timedelta(minutes=1))
        .not_valid_after(utcnow() + timedelta(days=365))
        .sign(_CA_KEY, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM).decode("utf-8")
    return self.register_certificate(
        pem, ca_certificate_pem=None, set_as_active=set_as_active, status="INACTIVE"
    )


models.IoTBackend.create_certificate_from_csr = create_certificate_from_csr

# moto's server is threaded but its DynamoDB backend is not thread-safe: a transaction
# deep-copies the table while other requests read or write it, which lets two conditional
# writes both pass, or fails with "dictionary changed size during iteration" (an HTML 500).
_DYNAMODB_LOCK = threading.RLock()


def _serialized(method):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with _DYNAMODB_LOCK:
            return method(*args, **kwargs)

    return wrapper


for _name, _method in list(vars(dynamodb_models.DynamoDBBackend).items()):
    if callable(_method) and not _name.startswith("_"):
        setattr(dynamodb_models.DynamoDBBackend, _name, _serialized(_method))


class _CopyTablesOncePerTransaction:
    """TransactWriteItems backs the table up once per item; once per table is enough."""

    def __init__(self):
        self.cache = None

    def deepcopy(self, value, memo=None):
        if self.cache is None or not isinstance(value, dynamodb_models.Table):
            return copy.deepcopy(value, memo)
        if id(value) not in self.cache:
            self.cache[id(value)] = copy.deepcopy(value)
        return self.cache[id(value)]


_COPIER = _CopyTablesOncePerTransaction()
dynamodb_models.copy = _COPIER  # the module uses only copy.deepcopy
_transact_write_items = dynamodb_models.DynamoDBBackend.transact_write_items


def _transact_write_items_copying_once(self, transact_items):
    with _DYNAMODB_LOCK:
        _COPIER.cache = {}
        try:
            return _transact_write_items(self, transact_items)
        finally:
            _COPIER.cache = None


dynamodb_models.DynamoDBBackend.transact_write_items = _transact_write_items_copying_once

if __name__ == "__main__":
    main(sys.argv[1:])
