"""Database TLS as docs/operations.md configures it: `ssl_*` parameters in database.url.

A private mariadbd with a certificate for 127.0.0.1 from a throwaway CA, and
require_secure_transport=ON. (PyMySQL 2 tries TLS on its own when the server offers it, but
without ``ssl_ca`` it verifies nothing: what the tests check is that ``ssl_ca`` makes it verify.)
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PrivateMariaDB, install_datadir, run_blazzctl

pytestmark = [pytest.mark.mariadb, pytest.mark.slow]


def _certificates(root: Path) -> dict[str, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it; a second, unrelated CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    def ca(label: str):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(name(label)).issuer_name(name(label))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        return key, cert

    ca_key, ca_cert = ca("blazz test CA")
    _, other_cert = ca("another CA")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(name("db.test")).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    files = {"ca": root / "ca.pem", "other_ca": root / "other-ca.pem", "cert": root / "server.pem",
             "key": root / "server-key.pem"}
    files["ca"].write_bytes(ca_cert.public_bytes(pem))
    files["other_ca"].write_bytes(other_cert.public_bytes(pem))
    files["cert"].write_bytes(cert.public_bytes(pem))
    files["key"].write_bytes(key.private_bytes(pem, serialization.PrivateFormat.TraditionalOpenSSL,
                                               serialization.NoEncryption()))
    return files


class TlsMariaDB(PrivateMariaDB):
    def __init__(self, root: Path, certs: dict[str, Path]) -> None:
        super().__init__(root)
        self.certs = certs

    def start(self) -> None:
        installer = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
        server = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        if not installer:
            pytest.skip("MariaDB server binaries not found")
        install_datadir(self.datadir)
        self.proc = subprocess.Popen(
            [server, "--no-defaults", f"--datadir={self.datadir}", f"--tmpdir={self.datadir.parent / 'tmp'}",
             "--user=root", f"--port={self.port}",
             "--bind-address=127.0.0.1", f"--socket={self.root}/s.sock", "--skip-log-bin",
             "--innodb-buffer-pool-size=64M", "--transaction-isolation=READ-COMMITTED",
             f"--ssl-ca={self.certs['ca']}", f"--ssl-cert={self.certs['cert']}", f"--ssl-key={self.certs['key']}",
             "--require-secure-transport=ON", f"--log-error={self.root}/error.log"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.wait_ready()

    def wait_ready(self, timeout: float = 60) -> None:
        import time

        import pymysql

        deadline = time.monotonic() + timeout
        while True:
            try:
                pymysql.connect(host="127.0.0.1", port=self.port, user="root", connect_timeout=1,
                                ssl={"ca": str(self.certs["ca"])}).close()
                return
            except pymysql.err.OperationalError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"mariadbd exited; see {self.root}/error.log")
                if time.monotonic() > deadline:
                    raise RuntimeError("mariadbd did not become ready")
                time.sleep(0.1)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    import pymysql

    root = tmp_path_factory.mktemp("tls-mariadb")
    server = TlsMariaDB(root, _certificates(root))
    server.start()
    conn = pymysql.connect(host="127.0.0.1", port=server.port, user="root", ssl={"ca": str(server.certs["ca"])})
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE blazz CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    conn.close()
    yield server
    server.stop()


def _url(server: TlsMariaDB, query: str = "") -> str:
    return f"mysql+pymysql://root@127.0.0.1:{server.port}/blazz{query}"


def test_a_verified_tls_connection_through_the_configuration(tmp_path, tls_server):
    from blazzctl.db import Database
    from blazzctl.settings import load_settings
    from sqlalchemy import text

    url = _url(tls_server, f"?ssl_ca={tls_server.certs['ca']}")
    config = tmp_path / "blazz.yaml"
    config.write_text(f"database:\n  url: {url}\n  connect_timeout: 5\n")
    for command in (["config", "check"], ["db", "upgrade"], ["db", "check"]):
        result = run_blazzctl(*command, "--config", str(config))
        assert result.code == 0, (command, result)
    db = Database.from_settings(load_settings(str(config)))
    try:
        with db.session() as s:  # the main pool
            assert s.execute(text("SHOW SESSION STATUS LIKE 'Ssl_cipher'")).one()[1]
        with db.read() as s:  # the autocommit pool of the daemons' polls
            assert s.execute(text("SHOW SESSION STATUS LIKE 'Ssl_version'")).one()[1].startswith("TLS")
    finally:
        db.dispose()


@pytest.mark.parametrize("host, query, refused", [
    ("127.0.0.1", "?ssl_ca={other_ca}", "certificate verify failed"),
    ("localhost", "?ssl_ca={ca}", "mismatch"),  # the certificate names 127.0.0.1 only
    ("localhost", "?ssl_ca={ca}&ssl_check_hostname=false", None),
], ids=["untrusted-ca", "other-host-name", "host-name-not-checked"])
def test_the_certificate_and_host_name_are_verified(tls_server, host, query, refused):
    certs = {name: str(path) for name, path in tls_server.certs.items()}
    url = _url(tls_server, query.format(**certs)).replace("127.0.0.1", host)
    result = run_blazzctl("db", "current", env={"BLAZZ_DATABASE_URL": url, "BLAZZ_DATABASE_CONNECT_TIMEOUT": "5"})
    if refused is None:
        assert result.code == 0, result
    else:
        assert result.code == 69, result
        assert refused in result.stderr.lower(), result
        assert "Traceback" not in result.stderr
