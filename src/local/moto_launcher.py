"""Start moto_server with two fidelity fixes and one speed fix.

1. IoT: moto's CreateCertificateFromCsr ignores the CSR's public key, never
   checks its signature and ignores setAsActive=false. AWS issues a certificate
   for the CSR's own key, so a device keeps its private key to itself.
2. DynamoDB: moto's threaded server runs writes concurrently without a lock, so
   two conditional writes on one item can both pass their condition. DynamoDB
   applies each write (and each transaction) atomically; a lock restores that.
3. Speed: moto lists its own package directory (a stat per service) on every
   request to route it; the listing never changes while the server runs.
"""

import copy
import functools
import logging
import sys
import threading
from datetime import timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from moto.core.utils import utcnow
from moto import backends as moto_backends
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


class _NoTableCopies:
    """Lets a transaction skip moto's whole-table backup (the wrapper below backs up items)."""

    def __init__(self):
        self.skip = False

    def deepcopy(self, value, memo=None):
        if self.skip and isinstance(value, dynamodb_models.Table):
            return value
        return copy.deepcopy(value, memo)


_COPIER = _NoTableCopies()
dynamodb_models.copy = _COPIER  # the module uses only copy.deepcopy
_transact_write_items = dynamodb_models.DynamoDBBackend.transact_write_items


def _item_key(table, op_type, op):
    if op_type == "Put":
        attrs = op["Item"]
        key = {table.hash_key_attr: attrs[table.hash_key_attr]}
        if table.range_key_attr is not None:
            key[table.range_key_attr] = attrs[table.range_key_attr]
        return key
    return op.get("Key")


def _transact_write_items_with_item_backup(self, transact_items):
    """moto backs up every table a transaction touches, once per item: O(table size) per
    transaction, which makes a growing job table ever slower. Backing up the items themselves
    gives the same all-or-nothing result at O(items)."""
    with _DYNAMODB_LOCK:
        touched = []
        for item in transact_items:
            op_type, op = next(iter(item.items()))
            table = self.tables.get(op.get("TableName"))
            key = _item_key(table, op_type, op) if table is not None else None
            if key is None:
                continue
            try:
                current = self.get_item(table.name, key)
            except Exception:  # noqa: BLE001 - an invalid key fails the transaction itself
                current = None
            touched.append((table.name, key, current.to_json()["Attributes"] if current else None))
        _COPIER.skip = True
        try:
            return _transact_write_items(self, transact_items)
        except Exception:
            for table_name, key, attrs in reversed(touched):
                if attrs is None:
                    try:
                        self.delete_item(table_name, key)
                    except Exception:  # noqa: BLE001 - nothing was written there
                        pass
                else:
                    self.put_item(table_name, attrs)
            raise
        finally:
            _COPIER.skip = False


dynamodb_models.DynamoDBBackend.transact_write_items = _transact_write_items_with_item_backup

_MOTO_MODULES = tuple(moto_backends.list_of_moto_modules())
moto_backends.list_of_moto_modules = lambda: _MOTO_MODULES
# One log line per request costs more than some requests; errors still show.
logging.getLogger("werkzeug").setLevel(logging.ERROR)

if __name__ == "__main__":
    main(sys.argv[1:])
